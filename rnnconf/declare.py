"""What a kernel claims about itself, declared next to the kernel and read when rnnconf resolves ``module:function``.

    import rnnconf

    @rnnconf.declare(spec="hgrn", dtypes=("float32", "float16", "bfloat16"),
                     supports=("initial_state", "final_state", "varlen", "grad"),
                     traits=dict(accumulate="float32", cumsum="none", saves="input"),
                     domains={"x": dict(lo=0.0, open_lo=True, law="lognormal")})
    def my_hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None): ...

The decorator only stores a plain dict on the function (``my_hgrn.__rnnconf__``) and returns the function itself, so
a kernel package that must not depend on rnnconf writes the same dict by hand — nothing is imported at its import
time::

    my_hgrn.__rnnconf__ = {"spec": "hgrn", "dtypes": ["float32", "float16"],
                           "traits": {"accumulate": "float32", "cumsum": "none", "saves": "input"}}

Keys (all optional):

* ``spec``: the spec id(s) the function implements; resolving it for another spec is a usage error.
* ``dtypes``: the dtypes it claims.  A dtype not claimed is not judged (its verdicts read "not claimed"); a
  claimed dtype that raises is ``errored``.
* ``supports``: its features (``initial_state``, ``final_state``, ``varlen``, ``grad``, ``qk_l2norm``); replaces
  what rnnconf would read from the signature.
* ``traits``: :class:`~rnnconf.spec.errors.Traits` fields (``accumulate``, ``cumsum``, ``chunk_size``, ``matmul``,
  ``log_values``, ``saves``); a field not given stays at :data:`~rnnconf.spec.errors.ANY_TRAITS`' (most
  permissive) value.
* ``domains``: narrower input domains, by argument name: a :class:`~rnnconf.spec.domains.Domain`, a constructor
  name of :mod:`rnnconf.spec.domains` (``"positive"``, ``"unit_open"``, …) or a dict of Domain fields laid over the
  spec's domain (e.g. ``dict(lo=0.0, open_lo=True)``).  It must lie within the spec's domain.
* ``deterministic``: ``False`` if repeated calls may differ (the determinism property then does not apply).

The command line (``--dtypes``, ``--traits``) overrides the in-code declaration key by key (traits field by field).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

ATTR = "__rnnconf__"
KEYS = ("spec", "dtypes", "supports", "traits", "domains", "deterministic")
DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16")
FEATURE_NAMES = ("initial_state", "final_state", "varlen", "grad", "qk_l2norm")
DOMAIN_NAMES = ("real", "positive", "log_gate", "logit", "unit_open")  # constructors in rnnconf.spec.domains


class DeclarationError(ValueError):
    """A malformed declaration: one line, naming the key and the accepted values."""


def declare(spec=None, *, dtypes=None, supports=None, traits=None, domains=None, deterministic=None):
    """Decorator: store these claims on the function as the plain dict ``fn.__rnnconf__`` (see the module doc).
    Checked when rnnconf reads them; the function is returned unchanged."""
    decl = {k: v for k, v in dict(spec=spec, dtypes=dtypes, supports=supports, traits=traits, domains=domains,
                                  deterministic=deterministic).items() if v is not None}

    def deco(fn):
        setattr(fn, ATTR, decl)
        return fn

    return deco


@dataclass(frozen=True)
class Claims:
    """A validated declaration (every field ``None`` when not declared); ``source`` says where it came from."""

    spec: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    supports: frozenset[str] | None = None
    traits: dict = field(default_factory=dict)  # Traits fields, validated; merged over ANY_TRAITS when applied
    domains: dict = field(default_factory=dict)
    deterministic: bool | None = None
    source: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) in (None, {}, ()) for f in fields(self))

    def over(self, base: "Claims") -> "Claims":
        """These claims laid over ``base``: each key given here wins; traits and domains merge field by field."""
        return Claims(spec=self.spec or base.spec, dtypes=self.dtypes or base.dtypes,
                      supports=self.supports if self.supports is not None else base.supports,
                      traits={**base.traits, **self.traits}, domains={**base.domains, **self.domains},
                      deterministic=base.deterministic if self.deterministic is None else self.deterministic,
                      source=base.source + self.source)


def _names(value, allowed, what) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    try:
        items = [str(v).replace("torch.", "") for v in value]
    except TypeError:
        raise DeclarationError(f"{what}: expected a list of names, got {value!r}") from None
    if not items:
        raise DeclarationError(f"{what}: empty list; known: {', '.join(allowed)}")
    for v in items:
        if v not in allowed:
            raise DeclarationError(f"{what}: unknown {v!r}; known: {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def parse_dtypes(value) -> tuple[str, ...]:
    """``"float32,float16"`` or a list of names / torch dtypes -> names; DeclarationError on anything else."""
    return _names(value, DTYPE_NAMES, "dtypes")


def parse_traits_text(value) -> dict:
    """Validate traits (``"accumulate=float32,cumsum=chunk,chunk_size=64"`` or a dict); returns the given fields as
    a dict of :class:`Traits` values."""
    from .spec.errors import ANY_TRAITS, Traits, parse_traits

    if isinstance(value, Traits):
        return {f.name: getattr(value, f.name) for f in fields(Traits)}
    try:
        t = parse_traits(value, base=ANY_TRAITS)
    except ValueError as e:
        raise DeclarationError(str(e)) from None
    keys = [k.strip().partition("=")[0].strip().replace("-", "_") for k in value.split(",") if k.strip()] \
        if isinstance(value, str) else [str(k).replace("-", "_") for k in value]
    return {k: getattr(t, k) for k in keys}


def claims_from(decl, source: str) -> Claims:
    """Validate a declaration dict (or :class:`Claims`) into :class:`Claims`."""
    if isinstance(decl, Claims):
        return decl
    if not isinstance(decl, dict):
        raise DeclarationError(f"{ATTR} must be a dict, got {type(decl).__name__}")
    unknown = [k for k in decl if k not in KEYS]
    if unknown:
        raise DeclarationError(f"unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
    spec = decl.get("spec")
    if spec is not None:
        spec = (spec,) if isinstance(spec, str) else tuple(str(s) for s in spec)
    dtypes = parse_dtypes(decl["dtypes"]) if decl.get("dtypes") is not None else None
    supports = frozenset(_names(decl["supports"], FEATURE_NAMES, "supports")) \
        if decl.get("supports") is not None else None
    traits = parse_traits_text(decl["traits"]) if decl.get("traits") is not None else {}
    domains = decl.get("domains") or {}
    if not isinstance(domains, dict):
        raise DeclarationError(f"domains: expected a dict argument name -> domain, got {type(domains).__name__}")
    det = decl.get("deterministic")
    if det is not None and not isinstance(det, bool):
        raise DeclarationError(f"deterministic: expected True or False, got {det!r}")
    return Claims(spec=spec, dtypes=dtypes, supports=supports, traits=traits, domains=dict(domains),
                  deterministic=det, source=(source,))


def declaration_of(fn) -> Claims | None:
    """The claims stored on ``fn`` (or on a function it wraps, ``__wrapped__``); ``None`` if it declares none."""
    seen = set()
    obj = fn
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        decl = getattr(obj, ATTR, None)
        if decl is not None:
            return claims_from(decl, f"{ATTR} of {getattr(fn, '__qualname__', repr(fn))}")
        obj = getattr(obj, "__wrapped__", None)
    return None


def _domain(spec, name: str, value):
    from .spec import domains as D

    try:
        base = spec.arg(name).domain
    except KeyError:
        raise DeclarationError(f"domains: spec {spec.id!r} has no argument {name!r}") from None
    if isinstance(value, D.Domain):
        dom = value
    elif isinstance(value, str):
        known = [n for n in DOMAIN_NAMES if hasattr(D, n)]
        if value not in known:
            raise DeclarationError(f"domains[{name!r}]: unknown domain {value!r}; known: {', '.join(known)}")
        dom = getattr(D, value)()
    elif isinstance(value, dict):
        allowed = {f.name for f in fields(D.Domain)} - {"name"}
        bad = [k for k in value if k not in allowed]
        if bad:
            raise DeclarationError(f"domains[{name!r}]: unknown field {bad[0]!r}; known: {', '.join(sorted(allowed))}")
        try:
            dom = replace(base, **{k: (tuple(v) if k == "edges" else v) for k, v in value.items()})
        except (TypeError, ValueError) as e:
            raise DeclarationError(f"domains[{name!r}]: {e}") from None
    else:
        raise DeclarationError(f"domains[{name!r}]: expected a Domain, a domain name or a dict of Domain fields, "
                               f"got {type(value).__name__}")
    dom = replace(dom, doc=dom.doc or base.doc)
    lo_ok = dom.lo > base.lo or (dom.lo == base.lo and (dom.open_lo or not base.open_lo))
    hi_ok = dom.hi < base.hi or (dom.hi == base.hi and (dom.open_hi or not base.open_hi))
    if not (lo_ok and hi_ok) or not (dom.lo < dom.hi or (dom.lo == dom.hi and math.isfinite(dom.lo))):
        raise DeclarationError(f"domains[{name!r}]: {dom.describe()} does not narrow the spec's {base.describe()}")
    return dom


def apply(target, spec, claims: Claims | None):
    """``(target with these claims, notes)``.  The target's own declarations are the defaults; claims replace them
    key by key (traits: over the target's traits when it declared any, else over ANY_TRAITS)."""
    import torch

    from .spec.errors import Traits

    if claims is None or claims.empty:
        return target, []
    if claims.spec and spec.id not in claims.spec:
        raise DeclarationError(f"declares spec {', '.join(claims.spec)}, not {spec.id!r}")
    kw, notes = {}, []
    src = " and ".join(claims.source) or "declaration"
    if claims.dtypes:
        kw["dtypes"] = tuple(getattr(torch, d) for d in claims.dtypes)
        notes.append(f"dtypes claimed ({src}): {', '.join(claims.dtypes)}; any other dtype is not judged")
    if claims.supports is not None:
        sup = set(claims.supports)
        dropped = []
        if not spec.has_state:
            dropped += sorted(sup & {"initial_state", "final_state"})
            sup -= {"initial_state", "final_state"}
        if not spec.supports_varlen and "varlen" in sup:
            dropped.append("varlen")
            sup.discard("varlen")
        kw["supports"] = frozenset(sup)
        notes.append(f"supports declared ({src}): {', '.join(sorted(sup)) or 'none'}"
                     + (f" (the spec has no {', '.join(dropped)})" if dropped else ""))
    if claims.traits:
        try:
            kw["traits"] = replace(target.traits, **claims.traits) if isinstance(target.traits, Traits) \
                else Traits(**claims.traits)
        except TypeError as e:
            raise DeclarationError(f"traits: {e}") from None
        if kw["traits"].cumsum == "chunk" and not kw["traits"].chunk_size:
            raise DeclarationError("traits: cumsum=chunk needs chunk_size (e.g. chunk_size=64)")
        notes.append(f"traits declared ({src}): {', '.join(f'{k}={v}' for k, v in claims.traits.items())}; "
                     f"judged under {kw['traits'].describe()}")
    if claims.domains:
        doms = dict(target.domain_overrides)
        for name, value in claims.domains.items():
            doms[name] = _domain(spec, name, value)
        kw["domain_overrides"] = doms
        notes.append(f"domains narrowed ({src}): "
                     + "; ".join(f"{n}: {doms[n].describe()}" for n in claims.domains))
    if claims.deterministic is not None:
        kw["deterministic"] = claims.deterministic
    return replace(target, **kw), notes


def to_suffix(claims: Claims | None) -> str:
    """The ``[dtypes=…;traits=…]`` suffix a canonical target string carries for command-line claims, so that a
    worker subprocess or a reproducer rebuilds the same target ('' when there are none)."""
    if claims is None:
        return ""
    parts = []
    if claims.dtypes:
        parts.append("dtypes=" + ",".join(claims.dtypes))
    if claims.traits:
        parts.append("traits=" + ",".join(f"{k}={'none' if v is None else v}" for k, v in claims.traits.items()))
    return f"[{';'.join(parts)}]" if parts else ""


def from_suffix(text: str) -> Claims:
    """Inverse of :func:`to_suffix` (without the brackets)."""
    decl = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        k, eq, v = part.partition("=")
        if k not in ("dtypes", "traits") or not eq:
            raise DeclarationError(f"bad claims suffix [{text}]: expected dtypes=…;traits=…")
        decl[k] = v
    return claims_from(decl, "command line")
