"""``mingru`` and ``minlstm`` — the recurrences of minGRU and minLSTM (Feng et al., "Were RNNs All We Needed?",
arXiv 2410.01201), at the kernel level: gate logits and candidate values in, hidden states out.

    mingru:   h_t = (1 − σ(z_t)) ⊙ h_{t−1} + σ(z_t) ⊙ h̃_t
    minlstm:  f′_t = σ(f_t) / (σ(f_t) + σ(i_t)),  i′_t = σ(i_t) / (σ(f_t) + σ(i_t)),
              h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t
    both:     o_t = h_t,   h_0 = initial_state (zeros when None)

z, f, i: [B, T, D] gate *logits*; h_tilde: [B, T, D] candidate values, already activated (the paper's h̃_t = Lin_h x_t,
or g(Lin_h x_t) in its log-space variant — that activation is the caller's business).  Initial and final state
[B, D]; ``final_state`` is ``None`` unless ``output_final_state``.  Varlen: B = 1 and ``cu_seqlens`` (int32/int64, N+1
offsets) packs N sequences, initial_state then [N, D].

Both are diagonal recurrences h_t = a_t h_{t−1} + b_t (:mod:`rnnconf.spec.diagonal`) with
    mingru:  a_t = σ(−z_t) = 1 − σ(z_t),   b_t = σ(z_t) h̃_t,    log a_t = −softplus(z_t)
    minlstm: a_t = f′_t,                   b_t = i′_t h̃_t,      log a_t = −softplus(diff_t),
             diff = softplus(−f) − softplus(−i) = log σ(i) − log σ(f),  f′ = σ(−diff),  i′ = σ(diff).
In both the two gate coefficients sum to one, so h_t is a convex combination of h_0, h̃_1, …, h̃_t.  minlstm is well
defined for every pair of finite logits, including both at −1e4 where σ(f) and σ(i) underflow in every float dtype:
f′ is their *ratio* (1/2 there), never 0/0.

INITIAL-STATE CONVENTION.  ``initial_state`` is h_0 itself — the state the recurrence starts from — not a
pre-activation.  The paper's log-space reference code instead feeds ``log g(h_0)`` as the first log-value, i.e. it
computes this op started from g(h_0), where g(x) = x + 0.5 (x ≥ 0), σ(x) (x < 0) (:func:`g`, :func:`log_g`).  To
reproduce that code, pass ``initial_state = g(h_0)``; passing h_0 to both gives different results (about 4e-2 in the
reference note's check, versus 1e-14 between equivalent forms).  Log-space forms of this spec therefore take
``log(initial_state)``, never ``log_g(initial_state)``, and are valid only for h_0 > 0 and h̃ > 0.

Error model (see :mod:`rnnconf.spec.errors`), counting unit roundoffs per step of the sequential evaluation:
  mingru — each gate σ(±z) = 1/(1 + exp(∓z)) costs 3 u relative (exp, add, divide; z is exact, and computing
  a_t as σ(−z), never as 1 − σ(z), keeps the *relative* accuracy of a_t when σ(z) ≈ 1); one product per term and one
  add ⇒ each of |a_t h_{t−1}|, |b_t| carries ≤ 5 u, so the step adds ≤ 5 u · m_t; the already-rounded state is then
  propagated through a rounded decay ⇒ c_step = 6.
  minlstm — branch max(f, i) ≥ 0 of :func:`minlstm_gates`: f′ = s_f/(s_f + s_i) with sigmoids of 3 u each; the
  ratio's relative error is (1 − f′)(ε_f − ε_i) + sum + divide ≤ 6 + 1 + 1 = 8 u (i′ alike, weight f′).  Branch both
  < 0: the numerators e^{f−M}(1 + eⁱ) carry ≤ 1.5 u (the one with x = M) and ≤ 5.5 u (exp, the two-sum correction,
  two products, 1 + eˣ) ⇒ ≤ 7 + 1 + 1 = 9 u.  With one product, one add and the propagation ⇒ c_step = 12.
  (Measured in float32 over 2·10⁴ logit pairs at scales 3, 30, 100: ≤ 4.6 u.)  CAVEAT for other forms: computing
  the gates as σ(∓diff) from a rounded diff — the paper's formula — costs ≈ u·|diff| relative on the smaller gate
  (measured 15 u at logits ~ N(0, 3), > 100 u at N(0, 30), float32), which this c_step does not cover once
  |diff| ≳ 10; such a form needs the exact-difference trick of :func:`minlstm_gates` to conform.
  Log-space forms additionally hold every value as a rounded logarithm, which costs ≈ u·|log b_t| and u·|log h_t|
  relative: charged through ``Traits(log_values=True)`` as u·c_log·E_t, E_t the oracle's log-value shadow.  Their
  backward must not differentiate through those logs (∂h/∂log b = h = exp(log h) underflows where ∂h/∂h̃ = σ(z)
  does not): the built-in one runs the adjoint in linear space (rnnconf.impls.mingru ``logspace``), so only the
  saved h_{t−1} carries the log-value error, charged to gradients as u·c_log·max_t(E_t/m_t).
  Forms that difference cumulative log-gate sums (chunkwise, log-space) pay u·depth·G_t in the exponent: both
  cumulative sums enter each difference, and each log a_t = −softplus(·) is itself rounded (≈ 1 u · |log a_t|, which
  accumulates to ≤ 1 u · G_t) ⇒ c_log = 3.
  Gradients are judged against float64 autograd of the sequential form, so its partials must be relatively accurate
  too: ∂σ(−z)/∂z = −σ(z)σ(−z) (:func:`sigmoid`; torch's own backward forms y(1 − y), which for y = σ(−z) ≈ 1 is off
  by u/σ(z) relative — 7e-12 at z = −11 in float64), and the minLSTM gate partials are the products
  ∂f′/∂f = f′i′σ(−f), ∂f′/∂i = −f′i′σ(−i) (:func:`minlstm_gates`) rather than autograd through the ratio.
  Underflow in gradients: a gate partial (σ(z)σ(−z), f′i′σ(−f), ≤ 1/4) below tiny is only absolutely accurate, and
  it multiplies h_{t−1} or h̃_t, which may be as large as finfo.max (log-space domains draw h̃ up to 1e38): the
  gradient bound's floor is c_step·tiny·Λ_t(1 + m_{t−1} + |h̃_t|) (rnnconf.spec.diagonal.underflow_cofactors)
  — e.g. dz = σσ·(h̃ − h_{t−1})·λ = 2.6e-52 · 1.3e21 is 0 in every float32 form at z = −118.8.
"""
from __future__ import annotations

import torch

from . import diagonal
from .base import Arg, Invariant, Output, Spec, register
from .diagonal import SEQUENCE_DIMS
from .domains import logit, real
from .errors import ErrorModel

DIMS = SEQUENCE_DIMS


# ---------------------------------------------------------------------------------------------------------------------
# the paper's elementwise math, in torch


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + eˣ) to a few u relative for every finite x (torch's ``F.softplus`` returns x above its threshold 20,
    an absolute error of up to 2e-9 — far above float64's u).  Differentiable everywhere, σ(0) = 1/2 at 0; neither
    branch of the ``where`` ever overflows, so no NaN leaks into gradients."""
    pos = x > 0
    xp = torch.where(pos, x, torch.zeros_like(x))
    xn = torch.where(pos, torch.zeros_like(x), x)
    return torch.where(pos, x + torch.log1p(torch.exp(-xp)), torch.log1p(torch.exp(xn)))


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positivity map g(x) = x + 0.5 (x ≥ 0), σ(x) (x < 0): continuous, increasing, > 0."""
    return torch.where(x >= 0, x + 0.5, _sigmoid_value(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x) = log(relu(x) + 0.5) (x ≥ 0), −softplus(−x) (x < 0) — never log(σ(·))."""
    return torch.where(x >= 0, torch.log(torch.relu(x) + 0.5), -softplus(-x))


def _two_sum(a: torch.Tensor, b: torch.Tensor):
    """Knuth's error-free transformation: a + b = s + e exactly (round-to-nearest, no fused ops)."""
    s = a + b
    bv = s - a
    av = s - bv
    return s, (a - av) + (b - bv)


def minlstm_diff(f: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """diff = softplus(−f) − softplus(−i) = log σ(i) − log σ(f), without cancelling two large softplus values:
    when both logits are negative use the identity softplus(−x) = softplus(x) − x, i.e. diff = (i − f) +
    (softplus(f) − softplus(i)) where both softplus terms are < log 2."""
    both_neg = (f < 0) & (i < 0)
    d_mixed = softplus(-f) - softplus(-i)
    d_neg = (i - f) + (softplus(f) - softplus(i))
    return torch.where(both_neg, d_neg, d_mixed)


def _sigmoid_value(x: torch.Tensor) -> torch.Tensor:
    """σ(x) to a few u relative for every x, also where σ(x) is subnormal: eˣ/(1 + eˣ) for x < 0.  (torch.sigmoid on
    CPU forms 1/(1 + e⁻ˣ), which overflows to 1/inf = 0 in float32 for x ≲ −88.7 although σ(−89.8) = 1.04e-39 is
    representable — a rnnconf property caught that as a chunk-form failure.)"""
    e = torch.exp(-x.abs())
    r = 1 / (1 + e)
    return torch.where(x >= 0, r, e * r)


class _Sigmoid(torch.autograd.Function):
    """σ with the derivative σ(x)·σ(−x): torch's own backward forms y(1 − y), which for y = σ(−z) ≈ 1 loses all
    relative accuracy of the (tiny) derivative — a reference gradient must not."""

    @staticmethod
    def forward(ctx, x):
        y = _sigmoid_value(x)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y * _sigmoid_value(-x)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """σ(x) to a few u relative (subnormal results included), backward σ(x)σ(−x) to a few u relative."""
    return _Sigmoid.apply(x)


def _minlstm_gates_value(f: torch.Tensor, i: torch.Tensor):
    M = torch.maximum(f, i)
    pos = M >= 0
    zero, neg1 = torch.zeros_like(f), torch.full_like(f, -1.0)
    # branch A: max logit ≥ 0 (inputs replaced by 0 elsewhere so that no branch divides by 0)
    sf, si = _sigmoid_value(torch.where(pos, f, zero)), _sigmoid_value(torch.where(pos, i, zero))
    den = sf + si
    fa, ia = sf / den, si / den
    # branch B: both logits < 0
    fb, ib = torch.where(pos, neg1, f), torch.where(pos, neg1, i)
    Mb = torch.maximum(fb, ib)

    def exp_minus_max(x):
        s, e = _two_sum(x, -Mb)
        return torch.exp(s) * (1 + e)

    nf = exp_minus_max(fb) * (1 + torch.exp(ib))
    ni = exp_minus_max(ib) * (1 + torch.exp(fb))
    den = nf + ni
    return torch.where(pos, fa, nf / den), torch.where(pos, ia, ni / den)


class _MinLSTMGates(torch.autograd.Function):
    """Forward :func:`_minlstm_gates_value`; backward from the closed-form partials
    ∂f′/∂f = f′i′σ(−f), ∂f′/∂i = −f′i′σ(−i), ∂i′/∂f = −f′i′σ(−f), ∂i′/∂i = f′i′σ(−i) — products of accurate positive
    factors (autograd through the ratio would cancel 1/den − s_f/den² when s_i ≪ s_f)."""

    @staticmethod
    def forward(ctx, f, i):
        fp, ip = _minlstm_gates_value(f, i)
        ctx.save_for_backward(f, i, fp, ip)
        return fp, ip

    @staticmethod
    def backward(ctx, g_fp, g_ip):
        f, i, fp, ip = ctx.saved_tensors
        w = fp * ip
        dg = g_fp - g_ip
        return w * _sigmoid_value(-f) * dg, -(w * _sigmoid_value(-i) * dg)


def minlstm_gates(f: torch.Tensor, i: torch.Tensor):
    """(f′, i′) = (σ(f), σ(i)) / (σ(f) + σ(i)), each to ≤ 9 u relative for every pair of finite logits, with
    gradients to a few u relative.

    max(f, i) ≥ 0: the plain ratio (its denominator is ≥ 1/2).  Both < 0 (where σ may underflow): with
    σ(x) = eˣ/(1 + eˣ) and M = max(f, i),  f′ = e^{f−M}(1 + eⁱ) / (e^{f−M}(1 + eⁱ) + e^{i−M}(1 + eᶠ)) — every exponent
    ≤ 0 and one of e^{f−M}, e^{i−M} is 1, so nothing overflows and the denominator is ≥ 1.  x − M is taken exactly
    (two-sum, e^{s+e} = e^s (1 + e)), so the small gate does not lose (u/2)|f − i| relative."""
    return _MinLSTMGates.apply(f, i)


# ---------------------------------------------------------------------------------------------------------------------
# diagonal-family coefficients


def mingru_coeffs(z: torch.Tensor, h_tilde: torch.Tensor):
    """(a_t, b_t) = (σ(−z_t), σ(z_t) h̃_t)."""
    return sigmoid(-z), sigmoid(z) * h_tilde


def mingru_log_a(z: torch.Tensor, h_tilde: torch.Tensor):
    return -softplus(z)


def mingru_log_gate(z: torch.Tensor):
    """log σ(z) = −softplus(−z)."""
    return -softplus(-z)


def minlstm_coeffs(f: torch.Tensor, i: torch.Tensor, h_tilde: torch.Tensor):
    """(a_t, b_t) = (f′_t, i′_t h̃_t)."""
    fp, ip = minlstm_gates(f, i)
    return fp, ip * h_tilde


def minlstm_log_a(f: torch.Tensor, i: torch.Tensor, h_tilde: torch.Tensor):
    """log f′ = −softplus(diff) (finite even where f′ underflows)."""
    return -softplus(minlstm_diff(f, i))


def minlstm_log_gate(f: torch.Tensor, i: torch.Tensor):
    """log i′ = −softplus(−diff)."""
    return -softplus(-minlstm_diff(f, i))


# ---------------------------------------------------------------------------------------------------------------------
# the two spec records

_H_TILDE = real(scale=1.0, edges=(0.0, 1e3, -1e3))
_OUTPUTS = (
    Output("o", ("B", "T", "D"), "o_t = h_t"),
    Output("final_state", ("B", "D"), "h_T (when output_final_state)", state=True),
)
_FORMS = ("sequential", "scan", "logspace", "chunk")


def _invariants(gate_sum: Invariant) -> tuple[Invariant, ...]:
    return (
        gate_sum,
        Invariant("convex-hull", "min(h_0, h̃_1, …, h̃_t) ≤ h_t ≤ max(h_0, h̃_1, …, h̃_t) elementwise (h_0 = 0 when "
                  "initial_state is None), within the bound in floats"),
        Invariant("positive", "h_0 > 0 and h̃_s > 0 for all s ≤ t ⇒ h_t > 0 (the log-space domain)", tolerance="exact",
                  checked_by="tests/oracles/test_mingru_oracle.py::test_positive_inputs_stay_positive"),
        Invariant("combine-associative", "a scan's combine is the spec's (a₁, b₁)∘(a₂, b₂) = (a₁a₂, a₂b₁ + b₂) and "
                  "(p∘q)∘r = p∘(q∘r) (exact in mpmath, within the bound in floats)"),
        Invariant("saturated-gate", "a_t = 0 (e.g. z_t = 1e4, or f_t = −1e4 < i_t) ⇒ h_t = h̃_t; a_t = 1 (z_t = −1e4, "
                  "or i_t = −1e4 < f_t) ⇒ h_t = h_{t−1}: exact in the sequential and linear-scan forms, within the "
                  "bound in forms that exponentiate log-gate sums",
                  checked_by="tests/oracles/test_mingru_oracle.py::test_no_nan_at_saturated_logits"),
    )


MINGRU = register(Spec(
    id="mingru",
    title="minGRU recurrence (kernel op)",
    paper="arXiv:2410.01201",
    version="1",
    math="h_t = (1 − σ(z_t)) ⊙ h_{t−1} + σ(z_t) ⊙ h̃_t;  o_t = h_t;  h_0 = initial_state or 0 (h_0 itself, not g(h_0))",
    signature="fn(z, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None) -> (o, final_state)",
    dims=DIMS,
    args=(
        Arg("z", ("B", "T", "D"), logit(), doc="update-gate logit z_t (gate σ(z_t))"),
        Arg("h_tilde", ("B", "T", "D"), _H_TILDE, doc="candidate value h̃_t (already activated)"),
        Arg("initial_state", ("B", "D"), real(), kind="state", optional=True, doc="h_0 (not a pre-activation)"),
    ),
    outputs=_OUTPUTS,
    forms=_FORMS,
    invariants=_invariants(Invariant(
        "gates-sum-to-one", "(1 − σ(z_t)) + σ(z_t) = 1: the decay σ(−z) and the input gate σ(z) sum to one, so "
        "h̃_t ≡ h_0 is a fixed point, h_t = h_0 (exact in mpmath, within the bound in floats)")),
    error_model=ErrorModel(c_step=6.0, c_log=3.0, c_out=1.0, doc=__doc__.split("Error model")[1].strip()),
    notes="initial_state is h_0; the paper's log-space code equals this op started from g(h_0).",
    extra={"coeffs": mingru_coeffs, "log_a": mingru_log_a, "reference_form": "sequential", "family": "diagonal",
           "independent_axes": ("B", "D")},
))

MINLSTM = register(Spec(
    id="minlstm",
    title="minLSTM recurrence (kernel op)",
    paper="arXiv:2410.01201",
    version="1",
    math="f′ = σ(f)/(σ(f)+σ(i)), i′ = σ(i)/(σ(f)+σ(i));  h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t;  o_t = h_t;  "
         "h_0 = initial_state or 0 (h_0 itself, not g(h_0))",
    signature="fn(f, i, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None) -> (o, final_state)",
    dims=DIMS,
    args=(
        Arg("f", ("B", "T", "D"), logit(), doc="forget-gate logit f_t"),
        Arg("i", ("B", "T", "D"), logit(), doc="input-gate logit i_t"),
        Arg("h_tilde", ("B", "T", "D"), _H_TILDE, doc="candidate value h̃_t (already activated)"),
        Arg("initial_state", ("B", "D"), real(), kind="state", optional=True, doc="h_0 (not a pre-activation)"),
    ),
    outputs=_OUTPUTS,
    forms=_FORMS,
    invariants=_invariants(Invariant(
        "gates-sum-to-one", "f′_t + i′_t = 1, including at f = i = −1e4 where f′ = i′ = 1/2, so h̃_t ≡ h_0 is a fixed "
        "point, h_t = h_0 (exact in mpmath, within the bound in floats)")),
    error_model=ErrorModel(c_step=12.0, c_log=3.0, c_out=1.0, doc=__doc__.split("Error model")[1].strip()),
    notes="initial_state is h_0; the paper's log-space code equals this op started from g(h_0).",
    extra={"coeffs": minlstm_coeffs, "log_a": minlstm_log_a, "reference_form": "sequential", "family": "diagonal",
           "independent_axes": ("B", "D")},
))

# the associative combine of (a, b) pairs, shared with every diagonal spec
combine = diagonal.combine
