"""``hgrn-layer`` — the gate construction around the HGRN kernel op, including the complex recurrence of HGRN1.

Qin et al., "Hierarchically Gated Recurrent Neural Network for Sequence Modeling" (HGRN, arXiv 2311.04823) and
"HGRN2: Gated Linear RNNs with State Expansion" (arXiv 2404.07904).  The layer's token mixer, with the projections
(and the output norm/gate) left outside the op, is

    μ_t = σ(f_t),   λ_t = γ + (1 − γ) μ_t ∈ (γ, 1),
    h_t = λ_t · e^{iθ} · h_{t−1} + (1 − λ_t) · c_t          (complex, elementwise over D),
    o_t = h_t,   h_0 = initial_state (zeros when None).

Canonical signature::

    fn(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False, cu_seqlens=None)
        -> (o, final_state)

* ``f``: [B, T, D] forget-gate logits (real).
* ``c_re``, ``c_im``: [B, T, D] the candidate c = c_re + i·c_im, already activated (HGRN1 uses SiLU on each part);
  the complex input is passed as two real tensors so every input is a float tensor.
* ``gamma``: [D] this layer's lower bound γ ∈ [0, 1) (see :func:`lower_bounds`); ``theta``: [D] real rotation
  angles, data independent (HGRN1 initialises θ_j = 10000^{−2j/d}).  Both are per-channel parameters.
* ``initial_state``: complex [B, D] (a real tensor is accepted and read with zero imaginary part).
* ``o``: complex [B, T, D]; ``final_state``: complex [B, D] (h_T) when ``output_final_state``.
* Output dtype: complex128 for float64 inputs, complex64 for float32 inputs **and for float16/bfloat16 inputs**
  (there is no usable complex half type; half inputs are evaluated in float32 and returned as complex64).
* Varlen: B = 1 and ``cu_seqlens`` (N+1 offsets) packs N sequences; initial_state and final_state are then [N, D].

With θ = 0 and real c this is the real-valued HGRN layer that flash-linear-attention builds around its kernel: the
``hgrn`` op with g_t = log λ_t and x_t = (1 − λ_t) c_t.

Gates.  :func:`gate` evaluates λ directly; :func:`log_gate` evaluates log λ the way fla's HGRN layer does,
logaddexp(log γ, log(1 − γ) + logσ(f)); the two agree within a derived bound.  **The input gate 1 − λ must be formed
as (1 − γ)·σ(−f)** (:func:`gate_complement`): forming 1 − λ̂ from a rounded λ̂ has absolute error ≈ u, i.e. relative
error u/(1 − λ), which is unbounded as λ → 1 (fla's layers compute ``1 - exp(log λ)``).  In float32, λ̂ itself rounds
to exactly 1 once (1 − γ)σ(−f) < u/2 (γ = 0: f ≳ 17), while the complement stays accurate.

Lower bounds (HGRN2 / fla convention, 0-indexed layers l = 0..L−1, Γ ∈ ℝ^{L×D} learnable):
P = softmax(Γ, dim=0), γ^l = Σ_{j=1}^{l} P_j, so γ^0 = 0 ≤ γ^1 ≤ … ≤ γ^{L−1} = 1 − P_0 < 1.  (HGRN1's ViT code uses
γ^l = Σ_{j<l} P_j instead — also starting at 0.)  fla evaluates ``cumsum(P) − P_0``, which loses the relative
accuracy of small γ^l and, when P_0 < a few ulps, returns γ^{L−1} > 1 in float32 (rounded softmax weights sum to
1 + O(Lu)); :func:`lower_bounds` sums P_1..P_l directly and caps at 1 − P_0.  In floats the strict γ^{L−1} < 1 holds
only when P_0 exceeds the rounding of 1 (P_0 ≳ u); otherwise γ^{L−1} rounds to exactly 1 and the layer ignores its
input.

Error model (see :mod:`rnnconf.spec.errors`), first order, u the accumulation unit roundoff, libm calls (exp, log,
log1p, cos, sin) counted at 1 ulp = 2u, the accuracy of torch's vectorised CPU functions (GPU libm can be looser:
CUDA documents 2 ulp for expf, sinf, cosf; Triton's exp is an approximation).  Sequential form, per
step: λ = γ + (1−γ)σ(f) — σ costs exp, add, divide (4u), then the rounded 1−γ and the product (2u) and a sum of two
non-negative terms (1u): |δλ| ≤ 7u·λ; the complement (1−γ)σ(−f): 6u; e^{iθ}: 2u; a = λe^{iθ}: 10u·|a|;
b = (1−λ)c: 7u·|b|; the complex product a·h (4 multiplies, 2 adds) costs √2·γ₂ < 3u (Higham, Lemma 3.5), the add of
b 1u.  The local error is therefore ≤ (10+3+1)u|a||h_{t−1}| + (7+1)u|b| ≤ 14u·m_t, with the magnitude shadow
m_t = λ_t m_{t−1} + (1−λ_t)|c_t| (|a_t| = λ_t); propagated through |a| ≤ 1 it sums to ≤ 14u·t·m_t ⇒ c_step = 14
(the real hgrn op needs 4; complex arithmetic and the gate construction cost the rest).  Scan forms multiply the same
rounded factors in a different order, within the same count.  Chunkwise (log-space) forms take differences of
within-chunk cumulative sums of the complex log-gate log a_s = log λ_s + iθ: two cumulative sums (2), the rounding of
each evaluated log λ_s (2u|log λ_s| from the log or the logaddexp's scale, 2), of the difference (1) and of the
phase θ·k (u·k|θ|, 1) ⇒ c_log = 6 (the O(u) part of each evaluated log-gate goes to c_step), with the
log-mass taken as the ℓ1 mass of the complex log-gate, G_t = Σ_{s≤t} (|log λ_s| + |θ|), so that large angles are
charged where forms compute e^{iθk} from θ·k.  c_out = 1 (the final rounding).  All bounds are on the complex modulus
|ô_t − o_t|.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Arg, Invariant, Output, Spec, register
from .diagonal import SEQUENCE_DIMS
from .domains import logit, real, unit_open
from .errors import ErrorModel

DIMS = SEQUENCE_DIMS


# ---- gate math (pure torch functions; shared by the torch forms and the tests) ---------------------------------
def _cdtype(*ts: torch.Tensor) -> torch.dtype:
    """The real dtype the gate math runs in: float64 if any input is, else float32 (half inputs upcast)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def complex_dtype(real_dtype: torch.dtype) -> torch.dtype:
    """Output dtype for inputs of ``real_dtype``: complex128 for float64, complex64 otherwise (half included)."""
    return torch.complex128 if real_dtype == torch.float64 else torch.complex64


def sigmoid_pair(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ(f), σ(−f)) from e = e^{−|f|} ≤ 1: 1/(1 + e) and e/(1 + e), each 4u, with autograd derivatives ±σ(f)σ(−f)
    that keep their relative accuracy (torch.sigmoid's backward forms 1 − σ̂, which is 0 in float32 once f ≳ 17)."""
    pos = f >= 0
    e = torch.exp(torch.where(pos, -f, f))
    big, small = 1 / (1 + e), e / (1 + e)
    return torch.where(pos, big, small), torch.where(pos, small, big)


def gate(f: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """λ = γ + (1 − γ)·σ(f), in float32 for half inputs; relative error ≤ 7u.

    Evaluated as γ + (1 − γ)σ(f) for f < 0 and as 1 − (1 − γ)σ(−f) for f ≥ 0 (where λ ≥ 1/2, so the subtraction is
    benign).  Both keep γ ≤ λ̂ ≤ 1 exactly (λ̂ = 1 once (1−γ)σ(−f) < u/2, e.g. γ = 0, f ≳ 17 in float32), and the second
    keeps ∂λ/∂γ = σ(−f) accurate where σ(f) ≈ 1: autograd of the first computes it as Σ g − Σ σ(f)g, two separately
    rounded reductions that leave ≈ u·Σ|g| where the true value is ≈ 0."""
    cd = _cdtype(f, gamma)
    f, gamma = f.to(cd), gamma.to(cd)
    sp, sm = sigmoid_pair(f)
    return torch.where(f >= 0, 1 - (1 - gamma) * sm, gamma + (1 - gamma) * sp)


def gate_complement(f: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """1 − λ = (1 − γ)·σ(−f), formed without cancellation (relative error ≤ 6u for every f, libm at 1 ulp)."""
    cd = _cdtype(f, gamma)
    f, gamma = f.to(cd), gamma.to(cd)
    return (1 - gamma) * sigmoid_pair(f)[1]


def log_gate(f: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """log λ = logaddexp(log γ, log(1 − γ) + logσ(f)) — flash-linear-attention's HGRN layer formula.

    Finite for every f in the logit domain (γ = 0 gives logσ(f)); absolute error ≤ u(6|log λ| + 9).  Its autograd
    derivative in γ is NaN at γ = 0 exactly (0·∞ through log γ), as for fla's formula."""
    cd = _cdtype(f, gamma)
    f, gamma = f.to(cd), gamma.to(cd)
    return torch.logaddexp(torch.log(gamma), torch.log1p(-gamma) + F.logsigmoid(f))


def coeffs(f, c_re, c_im, gamma, theta):
    """Complex (a_t, b_t) of the diagonal recurrence h_t = a_t h_{t−1} + b_t: a = λe^{iθ}, b = (1 − λ)c."""
    cd = _cdtype(f, c_re, c_im, gamma, theta)
    rot = torch.polar(torch.ones_like(theta, dtype=cd), theta.to(cd))
    a = gate(f, gamma).to(cd) * rot
    b = gate_complement(f, gamma).to(cd) * torch.complex(c_re.to(cd), c_im.to(cd))
    return a, b


def log_a(f, c_re, c_im, gamma, theta):
    """The complex log-gate log a_t = log λ_t + iθ (broadcast to [B, T, D]); the error model charges its ℓ1 mass
    |log λ_t| + |θ| per step."""
    lg = log_gate(f, gamma)
    return torch.complex(lg, theta.to(lg.dtype).expand_as(lg))


def lower_bounds(Gamma: torch.Tensor) -> torch.Tensor:
    """γ^l = Σ_{j=1}^{l} softmax(Γ, 0)_j for l = 0..L−1 (HGRN2/fla convention), Γ: [L, D] → [L, D].

    Summed directly (not as cumsum(P) − P_0) and capped at 1 − P_0 (its exact value at l = L−1), so that γ^0 = 0
    exactly, γ is non-decreasing in l and γ ≤ 1 in every dtype.  Half inputs are evaluated in float32."""
    cd = _cdtype(Gamma)
    P = torch.softmax(Gamma.to(cd), 0)
    g = torch.cat([torch.zeros_like(P[:1]), torch.cumsum(P[1:], 0)], 0)
    return torch.minimum(g, 1 - P[:1])


def grad_magnitudes(inputs: dict, h0: torch.Tensor | None, do: torch.Tensor, dht: torch.Tensor | None,
                    cumsum: bool = False) -> dict[str, torch.Tensor]:
    """Magnitudes bounding every summand of each gradient of L = Σ Re(conj(do)·o) + Re(conj(dht)·h_T) (float64),
    keyed by input name and ``initial_state``; ``do``/``dht`` may be complex or real.

    Adjoint run on absolute values: Λ_t = |do_t| + λ_{t+1}Λ_{t+1} (Λ_T also gets |dht|), and with the magnitude
    shadow m: |∂L/∂x_t| ≤ Λ_t (|∂a_t/∂x_t| m_{t−1} + |∂b_t/∂x_t|), where |∂a/∂f| = |∂λ/∂f| = (1−γ)σ(f)σ(−f),
    |∂b/∂f| = (1−γ)σ(f)σ(−f)|c|, |∂b/∂c_re| = |∂b/∂c_im| = 1 − λ; the parameters sum over batch and time:
    γ: Σ Λ_t σ(−f_t)(m_{t−1} + |c_t|) (for f < 0, Σ Λ_t(1 + σ(f_t))(…): autograd forms ∂λ/∂γ = 1 − σ(f)
    there from two separately rounded sums), θ: Σ Λ_t λ_t m_{t−1} (|∂a/∂θ| = λ); h_0: λ_1Λ_1.

    ``cumsum``: the form differentiates through cumulative sums of the complex log-gate log a = log λ + iθ, so
    ∂L/∂log a_t = Σ_{k≥t} (conj(adjoint)·h − …) is a difference of sums that cancel under strong decay; as for
    :func:`rnnconf.spec.diagonal.grad_magnitudes`, R_t = Σ_{k≥t} (|do_k| m_k + (1−λ_k)|c_k| Λ_k) enters, times
    |∂ log a_t/∂x|: (1−γ)σ(f)σ(−f)/λ for f, σ(−f)/λ for γ (large where λ is tiny: log-space forms lose the γ
    gradient there), 1 for θ."""
    x = {k: v.detach().double() for k, v in inputs.items()}
    f, gamma = x["f"], x["gamma"]
    lam, om = gate(f, gamma), gate_complement(f, gamma)
    cabs = torch.complex(x["c_re"], x["c_im"]).abs()
    B, T, D = f.shape
    m = h0.detach().abs().double() if h0 is not None else f.new_zeros(B, D)
    mp, ms = [], []
    for t in range(T):
        mp.append(m)
        m = lam[:, t] * m + om[:, t] * cabs[:, t]
        ms.append(m)
    m_prev = torch.stack(mp, 1) if T else f.new_zeros(B, 0, D)
    mag = torch.stack(ms, 1) if T else f.new_zeros(B, 0, D)
    acc = dht.detach().abs().double() if dht is not None else f.new_zeros(B, D)
    lams = [None] * T
    dabs = do.detach().abs().double()
    for t in reversed(range(T)):
        acc = dabs[:, t] + acc
        lams[t] = acc
        acc = lam[:, t] * acc
    Lam = torch.stack(lams, 1) if T else f.new_zeros(B, 0, D)
    sp, sm = sigmoid_pair(f)
    dlam_df = (1 - gamma) * sp * sm
    out = {
        "f": Lam * dlam_df * (m_prev + cabs),
        "c_re": Lam * om,
        "c_im": Lam * om,
        "gamma": Lam * torch.where(f >= 0, sm, 1 + sp) * (m_prev + cabs),
        "theta": Lam * lam * m_prev,
    }
    if cumsum and T:
        per_k = dabs * mag + om * cabs * Lam
        if dht is not None:
            per_k[:, -1] += dht.detach().abs().double() * mag[:, -1]
        R = torch.flip(torch.cumsum(torch.flip(per_k, [1]), 1), [1])  # Σ_{k ≥ t}
        inv = 1 / lam.clamp_min(torch.finfo(torch.float64).tiny)
        out["f"] = out["f"] + dlam_df * inv * R
        out["gamma"] = out["gamma"] + sm * inv * R
        out["theta"] = out["theta"] + R
    out["gamma"], out["theta"] = out["gamma"].sum((0, 1)), out["theta"].sum((0, 1))
    out["initial_state"] = acc
    return out


_T = "tests/spec/test_hgrn_layer_invariants.py::"  # where the invariants of the op itself are checked

SPEC = register(Spec(
    id="hgrn-layer",
    title="HGRN layer gate construction and complex diagonal recurrence (HGRN1 token mixer)",
    paper="arXiv:2311.04823, arXiv:2404.07904",
    version="1",
    math="λ_t = γ + (1−γ)σ(f_t);  h_t = λ_t e^{iθ} h_{t−1} + (1−λ_t)(c_re,t + i c_im,t);  o_t = h_t;  "
         "h_0 = initial_state or 0",
    signature="fn(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False, cu_seqlens=None) "
              "-> (o, final_state)",
    dims=DIMS,
    args=(
        Arg("f", ("B", "T", "D"), logit(), doc="forget-gate logit f_t, μ_t = σ(f_t)"),
        Arg("c_re", ("B", "T", "D"), real(scale=1.0, edges=(0.0, 1e3, -1e3)), doc="Re c_t (candidate)"),
        Arg("c_im", ("B", "T", "D"), real(scale=1.0, edges=(0.0, 1e3, -1e3)), doc="Im c_t (candidate)"),
        Arg("gamma", ("D",), unit_open(name="gamma"), kind="param",
            doc="lower bound γ ∈ [0, 1) of this layer (edges 0, 0.5, 1 − 2^-10; the last rounds to 1 in bfloat16)"),
        Arg("theta", ("D",), real(scale=3.0, edges=(0.0, math.pi), name="angle"), kind="param",
            doc="rotation angle θ (data independent); θ = 0 is the real HGRN layer"),
        Arg("initial_state", ("B", "D"), real(), kind="state", optional=True,
            doc="h_0, complex: real and imaginary parts each drawn from this domain"),
    ),
    outputs=(
        Output("o", ("B", "T", "D"), "o_t = h_t (complex)", dtype="complex"),
        Output("final_state", ("B", "D"), "h_T, complex (when output_final_state)", dtype="complex", state=True),
    ),
    forms=("sequential", "scan", "chunk16"),
    invariants=(
        Invariant("gate-range", "γ < λ_t < 1 exactly; in floats γ ≤ λ̂_t ≤ 1: λ̂ rounds to 1 when (1−γ)σ(−f) < u/2 "
                  "(float32, γ = 0: f ≳ 17) and to γ when (1−γ)σ(f) < uγ/2", tolerance="exact",
                  checked_by=_T + "test_gate_ranges_and_forms_agree"),
        Invariant("gate-forms-agree", "gate(f, γ) = exp(log_gate(f, γ)): relative difference ≤ u(18 + 6|log λ|)",
                  checked_by=_T + "test_gate_ranges_and_forms_agree"),
        Invariant("complement-accurate", "1 − λ is formed as (1−γ)σ(−f), relative error ≤ 6u, never as 1 − λ̂",
                  checked_by=_T + "test_lambda_rounds_to_one_in_float32_but_complement_does_not"),
        Invariant("modulus-bound", "|h_t| ≤ max(|h_0|, max_{s≤t} |c_s|) elementwise, since |λe^{iθ}| + (1−λ) = 1",
                  checked_by=_T + "test_modulus_bound"),
        Invariant("real-reduction", "θ = 0, c_im = 0, real h_0 ⇒ o = hgrn(x = (1−λ)c_re, g = log λ) and Im o = 0 "
                  "(exactly zero in floats: every imaginary product has a zero factor)",
                  checked_by=_T + "test_zero_angle_reduces_to_hgrn"),
        Invariant("conjugation-symmetry", "(θ, c, h_0) → (−θ, c̄, h̄_0) gives ō; bitwise in floats, rounding to "
                  "nearest being symmetric under negation", tolerance="exact",
                  checked_by=_T + "test_conjugation_symmetry_is_exact"),
        Invariant("phase-equivariance", "o is ℂ-linear in (c, h_0): rotating c and h_0 by e^{iφ} rotates o by e^{iφ}",
                  checked_by=_T + "test_phase_equivariance"),
        Invariant("combine-associative", "(a₁,b₁)∘(a₂,b₂) = (a₁a₂, a₂b₁ + b₂) is associative over ℂ",
                  checked_by=_T + "test_combine_associative_over_complex"),
        Invariant("lower-bounds", "γ^0 = 0, γ^l non-decreasing in l, γ^{L−1} = 1 − P_0 < 1 (exact); in floats "
                  "γ^0 = 0 and monotonicity hold exactly, γ^{L−1} ≤ 1 with equality only when P_0 ≲ u",
                  tolerance="exact", checked_by=_T + "test_lower_bounds"),
    ),
    error_model=ErrorModel(c_step=14.0, c_log=6.0, c_out=1.0, doc=__doc__.split("Error model")[1].strip()),
    extra={
        "reference_form": "sequential",
        "family": "complex-diagonal",
        "state_dtype": "complex",
        "independent_axes": ("B", "D"),
        "complex_coeffs": coeffs,  # complex (a, b): not for diagonal.grad_magnitudes, which assumes real tensors
        "log_a": log_a,  # complex; the oracle's log-mass is its ℓ1 mass Σ(|Re| + |Im|)
        "gate": gate,
        "gate_complement": gate_complement,
        "log_gate": log_gate,
        "lower_bounds": lower_bounds,
        # gradient magnitudes for the real loss Σ Re(conj(do)·o) the gradient property forms
        "grad_magnitudes": grad_magnitudes,
    },
))
