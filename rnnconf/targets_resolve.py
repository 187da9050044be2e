"""Turn a ``TARGET`` string into a :class:`~rnnconf.spec.targets.Target` for a spec.

Accepted forms (tried in this order):

* a known adapter name (:mod:`rnnconf.adapters`, e.g. ``fla:fused_recurrent_hgrn``);
* a built-in form or kernel of the spec: ``sequential``, ``hgrn/sequential`` or ``builtin:sequential``;
* ``path/to/file.py:function`` (the file is imported as a module; its directory goes on ``sys.path``);
* ``package.module:function`` (``function`` may be a dotted attribute path; the current directory goes on
  ``sys.path`` as it would for ``python -m``).

A third party's function becomes ``Target(kind="external")`` — ``kind="triton"`` when calling it launches a Triton
kernel (:func:`observe_kind`: one small call observed with
:func:`~rnnconf.kernels._backend.observe_triton_launches`; what its file imports does not matter), so that the
backend dtype self-test applies.  What it claims comes from its in-code declaration (:mod:`rnnconf.declare`,
``fn.__rnnconf__``) and from ``claims`` (the command line's ``--dtypes`` / ``--traits``, which win key by key).
Undeclared, it is judged under :data:`~rnnconf.spec.errors.ANY_TRAITS` (the most permissive derived error model),
in every float dtype, and what it supports is read from its signature: ``initial_state`` / ``output_final_state`` →
the state features, ``cu_seqlens`` → varlen, ``use_qk_l2norm_in_kernel`` → qk_l2norm, a ``**kwargs`` catch-all →
all of them; gradients are always assumed (a failing backward is reported as errored).
A function without ``output_final_state`` that returns a single tensor is adapted to the spec's ``(o, None)``.

Command-line claims travel in the canonical string as a suffix, ``path/to/file.py:fn[dtypes=float32;traits=…]``,
so that an ``--isolate`` worker and a reproducer rebuild the same target; :func:`resolve` accepts that suffix on any
TARGET.

Every problem with the string itself raises :class:`UsageError` with a one-line message (the CLI exits 2 on it).  A
module or file that exists but raises while importing is the target's own failure, not the string's: its functions
raise that error when called, so the smoke call makes it one ``uncallable`` verdict.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass, replace

from .declare import Claims, DeclarationError, claims_from, declaration_of, from_suffix, to_suffix
from .declare import apply as apply_claims
from .spec.errors import ANY_TRAITS
from .spec.targets import FLOAT_DTYPES, QK_L2NORM, Target


class UsageError(Exception):
    """A bad spec id, target string or option: reported in one line, exit status 2."""


@dataclass(frozen=True)
class Resolved:
    """A resolved target and how it was found.  ``origin``: ``"adapter"``, ``"builtin"``, ``"module"`` or
    ``"file"``; ``canonical``: the target string that rebuilds it from anywhere (absolute file paths)."""

    target: Target
    origin: str
    canonical: str
    notes: tuple[str, ...] = ()


ANY_TRAITS_NOTE = ("judged under ANY_TRAITS, the most permissive derived error model (accumulation in the input dtype, "
                   "cumulative log-gate sums over the whole sequence, the log-value shadow, chunk conditioning of one "
                   "chunk spanning the sequence, a backward re-reading activations saved in the input dtype), because "
                   "the target declares no traits (declare them: rnnconf.declare or --traits)")


def get_spec_or_usage(spec_id: str):
    from .spec import get_spec

    try:
        return get_spec(spec_id)
    except KeyError as e:
        raise UsageError(e.args[0]) from None


# ---- adapters (optional module, written separately) ------------------------------------------------------------
def _adapters():
    try:
        from . import adapters
    except ImportError:
        return None
    return adapters


def adapter_names() -> list[str]:
    ad = _adapters()
    if ad is None:
        return []
    try:
        return sorted(ad.ADAPTERS)
    except Exception:  # noqa: BLE001
        return []


def autotune_variants(name: str) -> list[tuple[str, Target]]:
    """``[(label, Target)]`` for an adapter with autotuned configs; ``[]`` for anything else."""
    ad = _adapters()
    if ad is None or name not in adapter_names() or not hasattr(ad, "autotune_variants"):
        return []
    return list(ad.autotune_variants(name))


def variant_target(name: str, label: str) -> Target:
    for lab, t in autotune_variants(name):
        if lab == label:
            return t
    raise UsageError(f"adapter {name!r} has no autotune variant {label!r}")


# ---- the resolver -----------------------------------------------------------------------------------------------
def resolve(spec_id: str, target: str, device: str = "cpu", name: str | None = None,
            claims: Claims | None = None, observe: bool = True) -> Resolved:
    """Resolve ``target`` for ``spec_id``; raises :class:`UsageError` (one line) on any problem.  ``name``: the
    name a third-party function's Target gets (default: the TARGET string as given).  ``claims``: command-line
    claims (:func:`cli_claims`), laid over the target's own declarations."""
    spec = get_spec_or_usage(spec_id)
    if not target or not target.strip():
        raise UsageError("empty --impl TARGET")
    target, claims = _split_claims(target.strip(), claims)
    r = _resolve(spec, target, device, name, claims, observe)
    if claims is not None and r.origin in ("adapter", "builtin"):
        try:
            t, notes = apply_claims(r.target, spec, claims)
        except DeclarationError as e:
            raise UsageError(f"--impl {target}: {e}") from None
        r = replace(r, target=t, notes=r.notes + tuple(notes))
    if claims is not None:
        r = replace(r, canonical=r.canonical + to_suffix(claims))
    return r


def cli_claims(dtypes=None, traits=None) -> Claims | None:
    """Claims from ``--dtypes`` / ``--traits`` (strings or already-parsed values); ``None`` when neither is given.
    A bad value raises :class:`UsageError` in one line."""
    if not dtypes and not traits:
        return None
    decl = {}
    for key, value in (("dtypes", dtypes), ("traits", traits)):
        if not value:
            continue
        try:
            decl[key] = claims_from({key: value}, "command line")
        except DeclarationError as e:
            raise UsageError(f"--{key} {value}: {e}") from None
    out = Claims(source=("command line",))
    for c in decl.values():
        out = replace(c, source=()).over(out)
    return out


def _split_claims(target: str, claims):
    """``file.py:fn[dtypes=…;traits=…]`` -> (``file.py:fn``, the suffix's claims under ``claims``)."""
    m = re.fullmatch(r"(.*?)\[([^\[\]]*)\]", target)
    if not m:
        return target, claims
    try:
        suffix = from_suffix(m.group(2))
    except DeclarationError as e:
        raise UsageError(f"--impl {target}: {e}") from None
    return m.group(1), (claims.over(suffix) if claims is not None else suffix)


def _resolve(spec, target: str, device: str, name, claims, observe: bool = True) -> Resolved:
    if target in adapter_names():
        return _resolve_adapter(spec, target, device)

    builtin = _builtin_name(spec, target)
    if builtin is not None:
        return builtin

    if ":" not in target:
        known = ", ".join(t.name for t in _builtin_forms(spec.id))
        raise UsageError(f"cannot resolve TARGET {target!r}: expected package.module:function, "
                         f"path/to/file.py:function, an adapter name, or a built-in form of {spec.id} ({known})")
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise UsageError(f"cannot resolve TARGET {target!r}: expected package.module:function or "
                         f"path/to/file.py:function")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module, canonical_where, origin = _import_file(where, target), os.path.abspath(where), "file"
    else:
        module, canonical_where, origin = _import_module(where, target), where, "module"
    try:
        fn = _get_attr(module, attr, where)
    except UsageError as e:
        similar = [a for a in adapter_names() if a.startswith(where + ":")]
        if similar:
            raise UsageError(f"{e}; known adapters: {', '.join(similar)}") from None
        raise
    canonical = f"{canonical_where}:{attr}"
    return _external(spec, fn, module, name=name or target, canonical=canonical, origin=origin, device=device,
                     claims=claims, observe=observe)


def resolve_target(spec_id: str, target: str, device: str = "cpu", variant: str | None = None,
                   name: str | None = None) -> Target:
    """The :class:`Target` alone (what reproducers call).  ``variant``: an autotune-variant label of an adapter."""
    if variant:
        base, claims = _split_claims(target, None)
        t = variant_target(base, variant)
        return t if claims is None else apply_claims(t, get_spec_or_usage(spec_id), claims)[0]
    return resolve(spec_id, target, device, name=name).target


def _builtin_forms(spec_id):
    from .registry import builtin_forms

    return builtin_forms(spec_id)


def _builtin_name(spec, target: str) -> Resolved | None:
    name = target
    if name.startswith("builtin:"):
        name = name[len("builtin:"):]
    elif ":" in name:
        return None
    if "/" in name:
        sid, _, fname = name.partition("/")
        if sid != spec.id:
            if os.path.exists(name):
                return None
            raise UsageError(f"built-in form {name!r} belongs to spec {sid!r}, not {spec.id!r}")
        name = fname
    for t in _builtin_forms(spec.id):
        if t.name == name:
            return Resolved(t, "builtin", t.id)
    if target.startswith("builtin:"):
        known = ", ".join(t.name for t in _builtin_forms(spec.id))
        raise UsageError(f"spec {spec.id!r} has no built-in form {name!r}; known: {known}")
    return None


def _resolve_adapter(spec, name: str, device: str) -> Resolved:
    ad = _adapters()
    try:
        t = ad.get_adapter(name)
    except Exception as e:  # noqa: BLE001  (unavailable dependency, …)
        raise UsageError(f"adapter {name!r} is not available: {_one_line(e)}") from None
    if t.spec_id != spec.id:
        raise UsageError(f"adapter {name!r} implements spec {t.spec_id!r}, not {spec.id!r}")
    return Resolved(t, "adapter", name)


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def _import_module(modname: str, target: str) -> types.ModuleType:
    if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", modname):
        raise UsageError(f"cannot resolve TARGET {target!r}: {modname!r} is not a module name or a .py path")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as e:
        if e.name and (modname == e.name or modname.startswith(e.name + ".")):  # the name itself: the command's
            raise UsageError(f"cannot import module {modname!r} (from --impl {target}): {_one_line(e)}") from None
        return _Unimportable(modname, e)  # a dependency of the target is missing: the target's own failure
    except BaseException as e:  # noqa: BLE001  (import-time errors of the target, SystemExit included)
        return _Unimportable(modname, e)


class _Unimportable(types.ModuleType):
    """A target module that exists but raises while importing: a kernel that cannot be called, not a mistyped
    command.  Every function looked up in it raises that error, so the smoke call gives the run its one
    ``uncallable`` verdict (with a report and exit 1) instead of a usage error."""

    def __init__(self, where: str, error: BaseException):
        super().__init__("rnnconf_unimportable_" + re.sub(r"\W", "_", where))
        self.__error = f"importing {where} raised {_one_line(error)}"

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        msg = self.__error

        def unimportable(*args, **kwargs):
            raise ImportError(msg)

        unimportable.__name__ = unimportable.__qualname__ = attr
        unimportable.__doc__ = msg
        return unimportable


def _import_file(path: str, target: str) -> types.ModuleType:
    ap = os.path.abspath(path)
    if not os.path.isfile(ap):
        raise UsageError(f"no such file {path!r} (from --impl {target})")
    modname = "rnnconf_target_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(ap))[0])
    existing = sys.modules.get(modname)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == ap:
        return existing
    d = os.path.dirname(ap)
    if d not in sys.path:
        sys.path.insert(0, d)
    spec = importlib.util.spec_from_file_location(modname, ap)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path!r} as a Python module (from --impl {target})")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod  # triton.jit and pickling look modules up by name
    try:
        spec.loader.exec_module(mod)
    except BaseException as e:  # noqa: BLE001  (the file's own code failed: an uncallable target, see _Unimportable)
        sys.modules.pop(modname, None)
        return _Unimportable(path, e)
    return mod


def _get_attr(module, attr: str, where: str):
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{where!r} has no function {attr!r}") from None
    if not callable(obj):
        raise UsageError(f"{where}:{attr} is a {type(obj).__name__}, not a function")
    return obj


def observe_kind(spec, target: Target, device: str = "cpu") -> tuple[str, str]:
    """``("triton" | "external", note)``: call ``target`` once on a small deterministic example of the spec's (or
    the target's narrower) domains, in its primary dtype, and see whether that launches a Triton kernel
    (:func:`~rnnconf.kernels._backend.observe_triton_launches`).  A call that raises decides nothing beyond what it
    launched before raising; the verdicts will show the error.

    Hook: the properties' smoke call (``rnnconf.properties.smoke``) observes the same way; when it sets the
    target's kind before properties run, this first call is the only extra one."""
    import torch

    from .kernels._backend import observe_triton_launches
    from .properties import strategies as S
    from .properties.calling import call_target

    dtype = torch.float32 if torch.float32 in target.dtypes else target.dtypes[0]
    dims = {n: max(d.lo, min(d.hi, 2)) for n, d in spec.dims.items()}
    inputs = {}
    unit = spec.extra.get("unit_rows", ())
    for i, a in enumerate(spec.inputs):
        dom = target.domain_overrides.get(a.name) or a.domain
        v = S.round_to(S.realize(dom, S.shape_of(a.shape, dims), 1000 + i, 1.0, 0.0, ()), dtype, dom)
        inputs[a.name] = S.unit_rows(v, dtype) if a.name in unit else v
    inputs.update(spec.static_values(dims))
    why = ""
    with observe_triton_launches() as seen:
        try:
            call_target(spec, target, inputs, dtype, device,
                        output_final_state="final_state" in target.supports and spec.has_state)
        except BaseException as e:  # noqa: BLE001  (the target's failure is the verdicts' business)
            if isinstance(e, KeyboardInterrupt):
                raise
            why = f" (the call raised {type(e).__name__})"
    if seen.launched:
        return "triton", (f"calling it launches Triton kernels ({', '.join(seen.kernels[:3])}): a Triton target, "
                          "the backend dtype self-test applies")
    return "external", f"calling it launched no Triton kernel{why}: judged as a plain function"


def detect_supports(fn) -> tuple[frozenset, bool]:
    """``(features, takes_output_final_state)`` from ``fn``'s signature; everything if it cannot be read."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return frozenset({"initial_state", "final_state", "varlen", "grad", QK_L2NORM}), True
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return frozenset({"initial_state", "final_state", "varlen", "grad", QK_L2NORM}), True
    feats = {"grad"}
    if "use_qk_l2norm_in_kernel" in params:  # the delta family's normalisation mode (fla's keyword)
        feats.add(QK_L2NORM)
    if "initial_state" in params:
        feats.add("initial_state")
    if "output_final_state" in params:
        feats.add("final_state")
    if "cu_seqlens" in params:
        feats.add("varlen")
    return frozenset(feats), "output_final_state" in params


def adapt_call(fn, spec, takes_final: bool, takes: set | None):
    """Wrap ``fn`` so that keyword arguments it does not take are not passed (they are only ever passed with their
    'absent' values for features the target does not support) and a lone returned tensor becomes ``(o, None)``."""
    if takes is None:
        return fn
    state_outs = [o for o in spec.outputs if o.state]

    @functools.wraps(fn)
    def call(*args, **kwargs):
        for k in ("initial_state", "output_final_state", "cu_seqlens"):
            if k in kwargs and k not in takes:
                kwargs.pop(k)
        ret = fn(*args, **kwargs)
        if not takes_final and state_outs and not isinstance(ret, (tuple, list)):
            ret = (ret,) + (None,) * len(state_outs)
        return ret

    return call


def _external(spec, fn, module, name: str, canonical: str, origin: str, device: str, claims=None,
              observe: bool = True) -> Resolved:
    try:
        decl = declaration_of(fn)
    except DeclarationError as e:
        raise UsageError(f"{canonical}: bad declaration: {e}") from None
    if decl is not None and claims is not None:
        claims = claims.over(decl)
    elif decl is not None:
        claims = decl
    supports, takes_final = detect_supports(fn)
    try:
        params = inspect.signature(fn).parameters
        takes = None if any(p.kind == p.VAR_KEYWORD for p in params.values()) else set(params)
    except (TypeError, ValueError):
        takes = None
    if not spec.has_state:
        supports = supports - {"initial_state", "final_state"}
    if not spec.supports_varlen:
        supports = supports - {"varlen"}
    t = Target(spec.id, name, adapt_call(fn, spec, takes_final, takes), kind="external", traits=ANY_TRAITS,
               dtypes=FLOAT_DTYPES, supports=supports, device=device,
               doc=(inspect.getdoc(fn) or "").split("\n\n")[0])
    try:
        t, claimed = apply_claims(t, spec, claims)
    except DeclarationError as e:
        raise UsageError(f"{canonical}: {e}") from None
    notes = [] if t.traits != ANY_TRAITS else [ANY_TRAITS_NOTE]
    if claims is not None and claims.traits and t.traits != ANY_TRAITS:
        notes.append("traits it does not declare are taken at ANY_TRAITS' (most permissive) values")
    if claims is None or claims.supports is None:
        notes.append(f"supports detected from the signature: {', '.join(sorted(t.supports))}")
    if "grad" in t.supports and (claims is None or claims.supports is None):
        notes.append("gradients assumed: an autograd failure is reported as errored")
    notes += claimed
    if not observe:  # the CLI's smoke call observes it, in the supervised worker (a crash there is a verdict)
        return Resolved(t, origin, canonical, tuple(notes))
    kind, how = observe_kind(spec, t, device)
    notes.append(how)
    return Resolved(replace(t, kind=kind), origin, canonical, tuple(notes))


def with_device(t: Target, device: str) -> Target:
    return t if t.device == device else replace(t, device=device)
