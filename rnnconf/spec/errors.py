"""Error models: where every tolerance in rnnconf comes from.

For a recurrence evaluated in a floating-point format with unit roundoff ``u`` the classical forward-error analysis
(Higham, *Accuracy and Stability of Numerical Algorithms*, §3) bounds the error of output element ``t`` by

    |ĥ_t − h_t| ≤ u_acc · (c_step·(t+1) + c_log·depth(t)·G_t) · m_t  +  u_out · c_out · m_t  +  floor

where
  * ``m_t`` is the *magnitude shadow*: the same computation run on absolute values (every summand made non-negative),
    which the oracle computes alongside the value.  It turns the bound into a condition-aware one: cancellation
    makes |h_t| ≪ m_t and the bound grows accordingly.
  * ``c_step`` counts the roundings per recurrence step (a product, an add, an ``exp``), propagated by decays ≤ 1.
  * ``G_t`` is the cumulative log-gate mass Σ_{s≤t} |g_s|.  Forms that take differences of cumulative sums of
    log-gates (chunkwise forms, log-space scans) lose ``u·depth·G_t`` in the exponent, i.e. a relative error of that
    size; ``depth(t)`` is the summation depth of that cumulative sum (0 when the form never forms one).
  * ``u_acc`` is the roundoff of the precision the form accumulates in, ``u_out`` the output dtype's.
  * ``floor`` covers gradual underflow: ``(t+1)·c_step·tiny(dtype)``.
  * ``cond``: an additive condition term computed by the oracle where the magnitude shadow alone cannot express the
    error (softmax attention: Σ_j P_ij ε_ij |v_j| + ε̄_i m_i, with ε_ij the roundoffs committed on score ij, see
    :mod:`rnnconf.spec.softmax`); charged u_acc·cond.
  * forms that hold values as logarithms (``Traits.log_values``, Heinsen's log-space scan) round each log, i.e.
    each contribution carries a relative error u·(|log| of its factors): they are charged u·c_log·E_t with E_t the
    oracle's log-value shadow E_t = a_t E_{t−1} + |b_t|·ℓ_t (+ |h_t|·|log|h_t|| for the final exp).

  * gradients of a form whose backward re-reads activations it saved rounded (``Traits.saves``, e.g. the forward's
    output in the input dtype) add u_s·mag: each re-read value carries relative error u_s, an input perturbation of
    the backward (derived in the ``gradients`` property, :mod:`rnnconf.properties.checks`).

Which terms apply depends on how a form evaluates: that is declared on the form as :class:`Traits`.  A target whose
traits are unknown (a third-party kernel) is judged under :data:`ANY_TRAITS`, which charges every term any built-in
form is charged, each at its largest (a meta-test judges every built-in form under it).  A third party declares its
traits with :func:`rnnconf.declare` or ``--traits`` (:func:`parse_traits`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

_U = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.float16: 2.0**-11,
    torch.bfloat16: 2.0**-8,
}
_TF32_U = 2.0**-11  # tf32 keeps 10 explicit mantissa bits


def unit_roundoff(dtype: torch.dtype | str) -> float:
    if isinstance(dtype, str):
        if dtype == "tf32":
            return _TF32_U
        dtype = getattr(torch, dtype)
    return _U[dtype]


def tiny(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).tiny)


@dataclass(frozen=True)
class Traits:
    """How a form evaluates, as far as its error is concerned.

    ``accumulate``: the least precision the form accumulates in, e.g. ``"float32"`` for a kernel that upcasts half
    inputs (``None``: the input dtype).  ``cumsum``: ``"none"`` (never
    forms a cumulative sum of log-gates), ``"chunk"`` (within chunks of ``chunk_size``), ``"full"`` (over the whole
    sequence, e.g. a log-space scan).  ``chunk_size``: the length of the chunks a chunkwise form solves (WY/UT
    conditioning, within-chunk sums); :data:`ANY_CHUNK` means "one chunk as long as the sequence", which dominates
    every chunk size (see :data:`ANY_TRAITS`).  ``matmul``: ``"ieee"`` or ``"tf32"`` for ``tl.dot``.
    ``saves``: the dtype in which the backward re-reads activations it saved in the forward (``"input"``: the input
    dtype, e.g. fla's hgrn backward reading the stored output o as h_{t−1}; ``None``: it recomputes them, or keeps
    them at least at the accumulation precision).  Charged by :func:`saved_u` (see the ``gradients`` property).
    """

    accumulate: str | None = None
    cumsum: str = "full"
    chunk_size: int | None = None
    matmul: str = "ieee"
    log_values: bool = False  # holds values as logarithms (log-space scans): charged u·c_log·(log-value shadow)
    saves: str | None = None  # dtype of the activations the backward re-reads: None, "input" or a dtype name
    # the reduction order depends on the inputs' memory layout (strides): non-contiguous inputs may then differ from
    # contiguous ones by rounding, judged within the bound instead of bitwise (the strided-inputs property)
    layout_dependent: bool = False
    # "newton": the form solves the recurrence as one system by Newton iterations (ParaRNN): the error model adds its
    # update's and its stopping rule's roundings, and its adjoint reduction's (rnnconf.spec.pararnn)
    solve: str = "sequential"
    # the form's amount of work depends on the whole call (an iteration run until a call-wide residual test passes):
    # its outputs at t may change by rounding when later inputs, or other batch rows, change — causality and
    # independence are then judged against the oracle within the bound instead of bitwise
    adaptive: bool = False

    def with_(self, **kw) -> "Traits":
        return replace(self, **kw)

    def describe(self) -> str:
        parts = [f"accumulate={self.accumulate or 'input dtype'}", f"cumsum={self.cumsum}"]
        if self.chunk_size:
            parts.append("chunk=any" if self.chunk_size >= ANY_CHUNK else f"chunk={self.chunk_size}")
        if self.matmul != "ieee":
            parts.append(f"matmul={self.matmul}")
        if self.log_values:
            parts.append("log-values")
        if self.saves:
            parts.append(f"saves={self.saves}")
        if self.solve != "sequential":
            parts.append(f"solve={self.solve}")
        if self.adaptive:
            parts.append("adaptive")
        return ", ".join(parts)


def saved_u(dtype: torch.dtype, traits: Traits) -> float:
    """Relative error of one activation the backward re-reads: the unit roundoff of ``traits.saves`` (the input
    dtype for ``"input"``), 0 when it saves nothing rounded."""
    if not traits.saves:
        return 0.0
    return unit_roundoff(dtype if traits.saves == "input" else traits.saves)


ANY_CHUNK = 2**31  # "a chunk as long as the sequence": every chunk-length term is taken at min(chunk, T) = T

SEQUENTIAL_TRAITS = Traits(cumsum="none")
# The model of a target that declares nothing: every term any built-in form is charged, each at its largest —
# accumulation in the input dtype (u_acc = u_in ≥ any declared accumulation's), cumulative log-gate sums over the
# whole sequence (depth t+1 ≥ min(t+1, C)), the log-value shadow (log-space forms), chunk conditioning of one chunk
# spanning the sequence (for a unit lower-triangular M, every contiguous chunk's block is a principal diagonal block
# of the whole: ‖M_c‖∞ ≤ ‖M‖∞ and (M_c)⁻¹ = (M⁻¹)_c, so κ_∞ and the within-chunk sums only grow), and a backward that
# re-reads activations saved in the input dtype.  matmul stays "ieee": no built-in form computes in TF32, and a TF32
# kernel says so (``matmul=tf32``) rather than loosening every float32 verdict by 2¹³.
# An unknown kernel's reduction order may depend on its inputs' layout (layout_dependent: strided inputs are judged
# within the bound, not bitwise).
ANY_TRAITS = Traits(accumulate=None, cumsum="full", chunk_size=ANY_CHUNK, log_values=True, saves="input",
                    layout_dependent=True)

TRAIT_VALUES = {
    "accumulate": ("input", "float64", "float32", "float16", "bfloat16"),
    "cumsum": ("none", "chunk", "full"),
    "matmul": ("ieee", "tf32"),
    "saves": ("none", "input", "float64", "float32", "float16", "bfloat16"),
    "log_values": ("true", "false"),
    "layout_dependent": ("true", "false"),
    "chunk_size": ("a positive integer", "any"),
}


def parse_traits(spec: "str | dict | Traits | None", base: Traits = ANY_TRAITS) -> Traits:
    """Traits from ``"accumulate=float32,cumsum=chunk,chunk_size=64,matmul=tf32,saves=float16"`` or the same as a
    dict (values may be Python objects: ``None``, ``True``, ints); keys not given keep ``base``'s value (by default
    :data:`ANY_TRAITS`: what a target does not declare is assumed at its most permissive).  Raises ``ValueError``
    with a one-line message naming the bad key or value and the accepted ones."""
    if spec is None:
        return base
    if isinstance(spec, Traits):
        return spec
    if isinstance(spec, str):
        items = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            k, eq, v = part.partition("=")
            if not eq or not k.strip() or not v.strip():
                raise ValueError(f"expected KEY=VALUE in traits, got {part!r}")
            items[k.strip().replace("-", "_")] = v.strip()
    elif isinstance(spec, dict):
        items = {str(k).replace("-", "_"): v for k, v in spec.items()}
    else:
        raise ValueError(f"traits must be a string, dict or Traits, got {type(spec).__name__}")
    kw = {}
    for k, v in items.items():
        if k not in TRAIT_VALUES:
            raise ValueError(f"unknown trait {k!r}; known: {', '.join(TRAIT_VALUES)}")
        text = str(v).strip().lower() if v is not None else "none"
        if k == "chunk_size":
            if text == "any":
                kw[k] = ANY_CHUNK
                continue
            if text == "none":
                kw[k] = None
                continue
            try:
                n = int(text)
            except ValueError:
                n = 0
            if n < 1 or isinstance(v, bool):
                raise ValueError(f"trait chunk_size: expected a positive integer or 'any', got {v!r}")
            kw[k] = n
            continue
        if k in ("log_values", "layout_dependent"):
            if isinstance(v, bool) or text in ("true", "false", "1", "0", "yes", "no"):
                kw[k] = v if isinstance(v, bool) else text in ("true", "1", "yes")
                continue
            raise ValueError(f"trait {k}: expected true or false, got {v!r}")
        ok = TRAIT_VALUES[k] + (("none",) if k == "accumulate" else ())
        if text not in ok:
            raise ValueError(f"trait {k}: expected one of {', '.join(TRAIT_VALUES[k])}, got {v!r}")
        if k == "accumulate":
            kw[k] = None if text in ("input", "none") else text
        elif k == "saves":
            kw[k] = None if text == "none" else text
        else:
            kw[k] = text
    out = replace(base, **kw)
    if out.cumsum == "chunk" and not out.chunk_size:
        raise ValueError("trait cumsum=chunk needs chunk_size (e.g. chunk_size=64)")
    return out


@dataclass(frozen=True)
class ErrorModel:
    """Coefficients of the bound above, stated per spec (see the spec module for their derivation)."""

    c_step: float
    c_log: float
    c_out: float = 1.0
    doc: str = ""
    # "steps": floor (t+1)·c_step·tiny(dtype); "roundings": ``steps`` counts the roundings on an element's dependency
    # chain (a running error analysis, rnnconf.spec.running_error), each of which may underflow by u_acc·tiny of the
    # precision it is computed in (gradual underflow) or flush a float32 subnormal (tiny(float32)), plus the output's
    # own u_out·tiny(dtype)
    floor: str = "steps"

    def accumulate_u(self, dtype: torch.dtype, traits: Traits) -> float:
        u = unit_roundoff(dtype)
        if traits.accumulate is not None:  # "accumulates in at least this precision"
            u = min(u, unit_roundoff(traits.accumulate))
        if traits.matmul == "tf32":
            u = max(u, _TF32_U)
        return u

    def depth(self, steps: torch.Tensor, traits: Traits) -> torch.Tensor:
        if traits.cumsum == "none":
            return torch.zeros_like(steps)
        if traits.cumsum == "chunk" and traits.chunk_size:
            return steps.clamp(max=traits.chunk_size)
        return steps

    def bound(self, steps: torch.Tensor, mag: torch.Tensor, logmass: torch.Tensor | None, dtype: torch.dtype,
              traits: Traits, logvalue: torch.Tensor | None = None,
              cond: torch.Tensor | None = None, underflow: torch.Tensor | None = None) -> torch.Tensor:
        """Per-element bound.  ``steps``: accumulation length of each element (t+1, broadcastable), ``mag``: magnitude
        shadow, ``logmass``: cumulative |log-gate| mass G (or ``None`` for ops without log-gates), ``logvalue``: the
        log-value shadow E_t (charged only to ``traits.log_values`` forms); ``underflow`` (floor "roundings"): the
        rounding count weighted by what multiplies each rounding's result afterwards (a spec's cofactor shadow), in
        place of ``steps`` — an underflowed product scaled up by later factors.  float64."""
        u_acc = self.accumulate_u(dtype, traits)
        u_out = unit_roundoff(dtype)
        steps = steps.double()
        coef = self.c_step * steps
        if logmass is not None and self.c_log:
            coef = coef + self.c_log * self.depth(steps, traits) * logmass
        # (1 + u_out): the final rounding to the output dtype also scales the accumulated error
        # a zero coefficient charges nothing, also against an infinite magnitude (0·inf would be a NaN bound)
        grow = torch.where(coef == 0, torch.zeros_like(mag), coef * mag) if self.c_step == 0 else coef * mag
        b = u_acc * grow * (1 + u_out) + u_out * self.c_out * mag
        if traits.log_values and logvalue is not None:
            b = b + u_acc * self.c_log * logvalue * (1 + u_out)
        if cond is not None:
            b = b + u_acc * cond * (1 + u_out)
        if self.floor == "roundings":
            acc = dtype if traits.accumulate in (None, "input") else getattr(torch, traits.accumulate)
            acc = acc if unit_roundoff(acc) >= u_acc else dtype
            n = steps if underflow is None else underflow.double()
            return b + n * (u_acc * tiny(acc) + tiny(torch.float32)) + u_out * tiny(dtype)
        return b + steps * self.c_step * tiny(dtype)
