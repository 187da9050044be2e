"""ParaRNN's forms (see :mod:`rnnconf.spec.pararnn`): the sequential loop, and Newton's method on the whole
sequence — each iteration one parallel reduction of the linearised recurrence δ_t = A_t δ_{t−1} + r_t — with the
backward by the adjoint through the same reduction on the reversed sequence (the implicit function theorem at the
solution: λ_t = g_t + A_{t+1}ᵀλ_{t+1}, then one vector–Jacobian product of the cell at the converged states).

Three Jacobian structures, one driver: diagonal (ParaGRU: one number per channel), 2×2 blocks (ParaLSTM: (h, c)
per channel) and dense (the nonlinear cells' GRU and LSTM: one (S·D)×(S·D) block per head).  The state is held as
``v [B, T, M, K]`` (M independent blocks of size K) and A as ``[B, T, M, K, K]`` (``[B, T, M, 1]`` when diagonal).

Newton keywords of every Newton form: ``newton_its`` (None: until max|F_t| ≤ 4u·max|s_t| in the compute precision,
or T iterations, which is exact in exact arithmetic) and ``omega`` (the step s ← s + ωδ).  Half inputs are computed
in float32 and returned in the input dtype.  Written from the spec's equations and the paper, independently of the
oracle and of the error model.
"""
from __future__ import annotations

import torch

from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from ._common import compute_dtype

_S = {"paragru": 1, "paralstm": 2}
STOP = 4.0  # the converging forms' rule: max|F| ≤ STOP·u·max|s| (the spec's NEWTON_STOP charges it)


# ---- the cells on [.., H, D] tensors ---------------------------------------------------------------------------
def paragru_step(x, a, p, st):
    """x: pre-activations with the bias [.., 3, H, D]; a [3, H, D]."""
    (h,) = st
    z = torch.sigmoid(x[..., 0, :, :] + a[0] * h)
    r = torch.sigmoid(x[..., 1, :, :] + a[1] * h)
    n = torch.tanh(x[..., 2, :, :] + a[2] * (r * h))
    return ((1 - z) * h + z * n,)


def paralstm_step(x, a, p, st):
    h, c = st
    f = torch.sigmoid(x[..., 0, :, :] + a[0] * h + p[0] * c)
    z = torch.tanh(x[..., 1, :, :] + a[1] * h)
    c2 = f * c + (1 - f) * z
    o = torch.sigmoid(x[..., 2, :, :] + a[2] * h + p[1] * c2)
    return (o * torch.tanh(c2), c2)


def paragru_jac(x, a, p, st):
    """∂h_t/∂h_{t−1}, diagonal: (1 − z) + (n − h)z′a_z + z n′ a_n (r + h r′ a_r)  →  [.., H, D, 1, 1]."""
    (h,) = st
    z = torch.sigmoid(x[..., 0, :, :] + a[0] * h)
    r = torch.sigmoid(x[..., 1, :, :] + a[1] * h)
    n = torch.tanh(x[..., 2, :, :] + a[2] * (r * h))
    J = (1 - z) + (n - h) * z * (1 - z) * a[0] + z * (1 - n * n) * a[2] * (r + h * r * (1 - r) * a[1])
    return J[..., None, None]


def paralstm_jac(x, a, p, st):
    """∂(h_t, c_t)/∂(h_{t−1}, c_{t−1}) per channel: [.., H, D, 2, 2] (the o-peephole reads the new c_t)."""
    h, c = st
    f = torch.sigmoid(x[..., 0, :, :] + a[0] * h + p[0] * c)
    z = torch.tanh(x[..., 1, :, :] + a[1] * h)
    c2 = f * c + (1 - f) * z
    o = torch.sigmoid(x[..., 2, :, :] + a[2] * h + p[1] * c2)
    th = torch.tanh(c2)
    df, do = f * (1 - f), o * (1 - o)
    dc_dc = f + (c - z) * df * p[0]
    dc_dh = (c - z) * df * a[0] + (1 - f) * (1 - z * z) * a[1]
    dh_dc2 = o * (1 - th * th) + th * do * p[1]
    row_h = torch.stack([th * do * a[2] + dh_dc2 * dc_dh, dh_dc2 * dc_dc], -1)
    row_c = torch.stack([dc_dh, dc_dc], -1)
    return torch.stack([row_h, row_c], -2)


STEPS = {"paragru": paragru_step, "paralstm": paralstm_step}
JACS = {"paragru": paragru_jac, "paralstm": paralstm_jac}


# ---- the parallel reduction ------------------------------------------------------------------------------------
def reduce_scan(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """δ_t = A_t δ_{t−1} + r_t (δ_0 = 0) along dim 1, Hillis–Steele doubling: at offset d every t ≥ d composes
    with t − d, r_t += A_t r_{t−d} and A_t ← A_t A_{t−d} (the later factor on the left).  ⌈log₂ T⌉ levels.  ``A``
    ``[B, T, M, 1]`` (diagonal, with r ``[B, T, M, 1]``) or ``[B, T, M, K, K]``."""
    T = r.shape[1]
    diag = A.dim() == r.dim()
    d = 1
    while d < T:
        if diag:
            r = torch.cat([r[:, :d], r[:, d:] + A[:, d:] * r[:, :-d]], 1)
            if 2 * d < T:
                A = torch.cat([A[:, :d], A[:, d:] * A[:, :-d]], 1)
        else:
            r = torch.cat([r[:, :d], r[:, d:] + (A[:, d:] @ r[:, :-d, ..., None])[..., 0]], 1)
            if 2 * d < T:
                A = torch.cat([A[:, :d], A[:, d:] @ A[:, :-d]], 1)
        d *= 2
    return r


def reduce_sequential(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The same recurrence, one step at a time (the reference the reduction is checked against in float)."""
    out, prev = [], torch.zeros_like(r[:, 0])
    diag = A.dim() == r.dim()
    for t in range(r.shape[1]):
        prev = (A[:, t] * prev if diag else (A[:, t] @ prev[..., None])[..., 0]) + r[:, t]
        out.append(prev)
    return torch.stack(out, 1) if out else r


def transpose(A: torch.Tensor, r_dim: int) -> torch.Tensor:
    return A if A.dim() == r_dim else A.transpose(-1, -2)


# ---- the Newton driver -----------------------------------------------------------------------------------------
class Problem:
    """One recurrence in the driver's layout: ``f(prev, params) -> v`` and ``jac(prev, params) -> A`` on
    ``[B, T, M, K]`` states, and the initial state ``s0 [B, M, K]`` (built from the params, so its gradient flows)."""

    def __init__(self, f, jac, s0, unused=None):
        self.f, self.jac, self.s0 = f, jac, s0

    def shifted(self, V):
        return torch.cat([self.s0[:, None], V[:, :-1]], 1)


def initial_guess(pb: Problem, params, T: int) -> torch.Tensor:
    """s⁽⁰⁾_t = f(0, x_t), and f(s_0, x_1) at t = 1."""
    prev = torch.zeros((pb.s0.shape[0], T) + tuple(pb.s0.shape[1:]), dtype=pb.s0.dtype)
    prev[:, 0] = pb.s0
    return pb.f(prev, params)


def newton(pb: Problem, params, T: int, its=None, omega=1.0, reduce=reduce_scan, guess=initial_guess,
           stats: dict | None = None):
    """Newton's method on F(S) = S − f(shift(S)); returns S [B, T, M, K].  ``its`` None: until
    max|r| ≤ STOP·u·max|S| over the call (r = f(shift(S)) − S = −F), at most T iterations."""
    if T == 0:
        return pb.s0.new_zeros((pb.s0.shape[0], 0) + tuple(pb.s0.shape[1:]))
    V = guess(pb, params, T)
    u = torch.finfo(V.dtype).eps / 2
    cap = its if its is not None else T
    done = 0
    for _ in range(cap):
        prev = pb.shifted(V)
        r = pb.f(prev, params) - V
        if its is None and bool(r.abs().max() <= STOP * u * V.abs().max()):
            break
        A = pb.jac(prev, params)
        V = V + omega * reduce(A, r)
        done += 1
    if stats is not None:
        stats["iterations"] = done
    return V


class _NewtonFn(torch.autograd.Function):
    """Forward: Newton (no graph).  Backward: λ by the reduction on the reversed sequence, then one VJP of f at the
    solution.  ``make(params) -> (Problem, T)``; the last param is the initial state."""

    @staticmethod
    def forward(ctx, make, its, omega, reduce, guess, *params):
        pb, T = make(params)
        with torch.no_grad():
            V = newton(pb, params, T, its, omega, reduce, guess)
        ctx.make, ctx.reduce = make, reduce
        ctx.save_for_backward(V, *params)
        return V

    @staticmethod
    def backward(ctx, gV):
        V, *params = ctx.saved_tensors
        pb, T = ctx.make(params)
        if T == 0:
            return (None,) * (5 + len(params))
        with torch.no_grad():
            A = pb.jac(pb.shifted(V), params)  # A[:, t] = ∂s_t/∂s_{t−1}
            # λ_t = g_t + A_{t+1}ᵀ λ_{t+1}: on the reversed sequence, A′_i = A_{T−i}ᵀ (A′_0 unused: zero)
            At = transpose(A[:, 1:], gV.dim()).flip(1)
            At = torch.cat([torch.zeros_like(A[:, :1]), At], 1)
            lam = ctx.reduce(At, gV.flip(1)).flip(1)
        with torch.enable_grad():
            ps = [q.detach().requires_grad_(True) for q in params]
            pb2, _ = ctx.make(ps)
            out = pb2.f(pb2.shifted(V.detach()), ps)
            gs = torch.autograd.grad(out, ps, lam, allow_unused=True)
        return (None,) * 5 + tuple(gs)


# ---- ParaGRU / ParaLSTM in the driver's layout ([B, T, H·D, S]) ------------------------------------------------
def para_problem(cell, params, step=None, jac=None) -> tuple[Problem, int]:
    """The cell as a Problem; ``params`` = (Wx, a, b, p, s0 [S, B, H, D]) in the compute dtype."""
    Wx, a, b, p, s0 = params
    B, T, G, H, D = Wx.shape
    S = _S[cell]
    step, jac = step or STEPS[cell], jac or JACS[cell]

    def unpack(prev):
        return tuple(prev[..., k].reshape(B, T, H, D) for k in range(S))

    def f(prev, ps):
        out = step(ps[0] + ps[2], ps[1], ps[3], unpack(prev))
        return torch.stack(out, -1).reshape(B, T, H * D, S)

    def J(prev, ps):
        A = jac(ps[0] + ps[2], ps[1], ps[3], unpack(prev)).reshape(B, T, H * D, S, S)
        return A[..., 0] if S == 1 else A

    return Problem(f, J, s0.permute(1, 2, 3, 0).reshape(B, H * D, S), None), T


def para_newton(cell, Wx, a, b, p=None, initial_state=None, output_final_state=False, newton_its=None, omega=1.0,
                reduce=reduce_scan, guess=initial_guess, step=None, jac=None):
    od = Wx.dtype
    cd = compute_dtype(od)
    B, T, G, H, D = Wx.shape
    S = _S[cell]
    Wx, a, b = Wx.to(cd), a.to(cd), b.to(cd)
    p = p.to(cd) if p is not None else a.new_zeros(2, H, D)
    s0 = initial_state.to(cd) if initial_state is not None else Wx.new_zeros(S, B, H, D)

    def make(params):
        return para_problem(cell, params, step, jac)

    V = _NewtonFn.apply(make, newton_its, omega, reduce, guess, Wx, a, b, p, s0)
    states = V.reshape(B, T, H, D, S)
    h = states[..., 0].to(od)
    if not output_final_state:
        return h, None
    fin = states[:, -1].permute(3, 0, 1, 2) if T else s0
    return h, fin.to(od)


def para_sequential(cell, Wx, a, b, p=None, initial_state=None, output_final_state=False, step=None):
    od = Wx.dtype
    cd = compute_dtype(od)
    B, T, G, H, D = Wx.shape
    S = _S[cell]
    x = (Wx + b).to(cd) if od == cd else Wx.to(cd) + b.to(cd)
    a = a.to(cd)
    p = p.to(cd) if p is not None else None
    st = tuple((initial_state.to(cd) if initial_state is not None else x.new_zeros(S, B, H, D)).unbind(0))
    step = step or STEPS[cell]
    hs = []
    for t in range(T):
        st = step(x[:, t], a, p, st)
        hs.append(st[0])
    h = torch.stack(hs, 1) if hs else x.new_zeros(B, 0, H, D)
    return h.to(od), (torch.stack(st).to(od) if output_final_state else None)


def _api(cell, form, **kw):
    impl = para_newton if form == "newton" else para_sequential
    if cell == "paralstm":
        def fn(Wx, a, b, p, initial_state=None, output_final_state=False, **nk):
            return impl(cell, Wx, a, b, p, initial_state, output_final_state, **kw, **nk)
    else:
        def fn(Wx, a, b, initial_state=None, output_final_state=False, **nk):
            return impl(cell, Wx, a, b, None, initial_state, output_final_state, **kw, **nk)
    fn.__name__ = f"{cell}_{form}"
    return fn


NEWTON_EXTRAS = {"newton": {"its_kw": "newton_its", "omega_kw": "omega", "iterations": None,
                            "reduce": reduce_scan}}
_SEQ_TRAITS = Traits(accumulate="float32", cumsum="none")
_NEWTON_TRAITS = Traits(accumulate="float32", cumsum="none", solve="newton", adaptive=True)
SEQUENTIAL, NEWTON = {}, {}
for _cell in _S:
    SEQUENTIAL[_cell] = _api(_cell, "sequential")
    NEWTON[_cell] = _api(_cell, "newton")
    register_form(Target(_cell, "sequential", SEQUENTIAL[_cell], traits=_SEQ_TRAITS,
                         doc="python loop over t; float32 state for half inputs"))
    register_form(Target(_cell, "newton", NEWTON[_cell], traits=_NEWTON_TRAITS, extras=NEWTON_EXTRAS,
                         doc="Newton on the whole sequence until max|F| ≤ 4u·max|s| (≤ T iterations), Hillis–Steele "
                             "reduction per iteration, adjoint backward through the reversed reduction"))
