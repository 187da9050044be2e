"""Planted bugs for ParaRNN's Newton forms (rnnconf/spec/pararnn.py): each mutant is the Newton form of
:mod:`rnnconf.impls.pararnn` with one part replaced — a Jacobian, a reduction, an initial guess, an update rule, a
stopping rule — by a copy differing in the lines marked ``# BUG``.

``pararnn_bugs(add)`` registers them into the catalogue of :mod:`planted_bugs`.
"""
from __future__ import annotations

import torch

from rnnconf.impls import pararnn as P


# ---- a Jacobian missing the reset gate's term ------------------------------------------------------------------
def _gru_jac_no_reset(x, a, p, st):
    (h,) = st
    z = torch.sigmoid(x[..., 0, :, :] + a[0] * h)
    r = torch.sigmoid(x[..., 1, :, :] + a[1] * h)
    n = torch.tanh(x[..., 2, :, :] + a[2] * (r * h))
    J = (1 - z) + (n - h) * z * (1 - z) * a[0] + z * (1 - n * n) * a[2] * r  # BUG: drops h·r′·a_r (∂r/∂h)
    return J[..., None, None]


# ---- reductions ------------------------------------------------------------------------------------------------
def _reduce_order_swapped(A, r):
    T, diag, d = r.shape[1], A.dim() == r.dim(), 1
    while d < T:
        if diag:
            r = torch.cat([r[:, :d], r[:, d:] + A[:, d:] * r[:, :-d]], 1)
            A = torch.cat([A[:, :d], A[:, d:] * A[:, :-d]], 1)
        else:
            r = torch.cat([r[:, :d], r[:, d:] + (A[:, d:] @ r[:, :-d, ..., None])[..., 0]], 1)
            A = torch.cat([A[:, :d], A[:, :-d] @ A[:, d:]], 1)  # BUG: A_{t−d}·A_t, the earlier factor on the left
        d *= 2
    return r


def _reduce_wrong_offset(A, r):
    T, diag, d = r.shape[1], A.dim() == r.dim(), 1
    while d < T:
        if diag:
            r = torch.cat([r[:, :d], r[:, d:] + A[:, d:] * r[:, :-d]], 1)
            A = torch.cat([A[:, :d], A[:, d:] * A[:, :-d]], 1)
        else:
            r = torch.cat([r[:, :d], r[:, d:] + (A[:, d:] @ r[:, :-d, ..., None])[..., 0]], 1)
            A = torch.cat([A[:, :d], A[:, d:] @ A[:, :-d]], 1)
        d = 2 * d + 1  # BUG: offsets 1, 3, 7, … (2^k − 1) instead of 1, 2, 4, …: some prefixes counted twice
    return r


# ---- the initial guess seeded from s_0 --------------------------------------------------------------------------
def _guess_from_s0(pb, params, T):
    prev = torch.zeros((pb.s0.shape[0], T) + tuple(pb.s0.shape[1:]), dtype=pb.s0.dtype)
    prev[:, 0] = pb.s0
    V = pb.f(prev, params)
    V[:, 0] = pb.s0  # BUG: s⁽⁰⁾_1 = s_0 instead of f(s_0, x_1)
    return V


# ---- damping on the residual of the h-form ---------------------------------------------------------------------
def _newton_damped_residual(pb, params, T, its=None, omega=1.0, reduce=P.reduce_scan, guess=P.initial_guess,
                            stats=None):
    """The iteration in its h-form s⁽ᵏ⁺¹⁾_t = A_t s⁽ᵏ⁺¹⁾_{t−1} + [f(s⁽ᵏ⁾_{t−1}) − A_t s⁽ᵏ⁾_{t−1}] (equal to Newton for
    ω = 1), damped on the bracket instead of the step."""
    V = guess(pb, params, T)
    u = torch.finfo(V.dtype).eps / 2
    for _ in range(its if its is not None else T):
        prev = pb.shifted(V)
        fv = pb.f(prev, params)
        if its is None and bool(((fv - V).abs() <= u * V.abs()).all()):
            break
        A = pb.jac(prev, params)
        Ap = A * prev if A.dim() == prev.dim() else (A @ prev[..., None])[..., 0]
        rhs = omega * (fv - Ap)  # BUG: ω scales the bracket (the linearised residual), not the step s⁽ᵏ⁺¹⁾ − s⁽ᵏ⁾
        s0 = A[:, 0] * pb.s0 if A.dim() == prev.dim() else (A[:, 0] @ pb.s0[..., None])[..., 0]
        rhs = torch.cat([rhs[:, :1] + s0, rhs[:, 1:]], 1)
        V = reduce(A, rhs)
    return V


def _with_driver(driver, fn):
    """Run ``fn`` (a Newton form) with the module's Newton driver replaced."""
    def run(*a, **k):
        orig = P.newton
        P.newton = driver
        try:
            return fn(*a, **k)
        finally:
            P.newton = orig

    return run


# ---- stopping after 3 iterations while claiming convergence -----------------------------------------------------
def _three_iterations(cell):
    def fn(Wx, a, b, *rest, initial_state=None, output_final_state=False, newton_its=None, omega=1.0):
        its = 3 if newton_its is None else newton_its  # BUG: "until converged" stops after pararnn's 3
        p = rest[0] if rest else None
        return P.para_newton(cell, Wx, a, b, p, initial_state, output_final_state, its, omega)

    return fn


def _form(cell, **kw):
    def fn(Wx, a, b, *rest, initial_state=None, output_final_state=False, newton_its=None, omega=1.0):
        p = rest[0] if rest else None
        return P.para_newton(cell, Wx, a, b, p, initial_state, output_final_state, newton_its, omega, **kw)

    return fn


def _extras(reduce):
    return {"newton": {**P.NEWTON_EXTRAS["newton"], "reduce": reduce}}


def pararnn_bugs(add) -> None:
    add("pararnn-jac-no-reset-term", "paragru/newton", "planted-jac-no-reset-term",
        _form("paragru", jac=_gru_jac_no_reset), {"gradients"},
        "ParaGRU Jacobian without the reset gate's term z·n′·a_n·h·r′·a_r (Newton still converges, as a "
        "quasi-Newton iteration; the adjoint backward reads the wrong Jacobian)",
        "issue 15 (Jacobian missing the reset-gate term); pararnn-torch para_gru.py:375")
    add("pararnn-reduce-order-swapped", "paralstm/newton", "planted-reduce-order-swapped",
        _form("paralstm", reduce=_reduce_order_swapped), {"newton-reduction"},
        "reduction composing A_{t−d}·A_t (the earlier factor on the left): invisible for diagonal A",
        "issue 15 (reduction factor order swapped); the monoid is not commutative (models-2.md, common primitive)",
        extras=_extras(_reduce_order_swapped))
    add("pararnn-reduce-wrong-offset", "paragru/newton", "planted-reduce-wrong-offset",
        _form("paragru", reduce=_reduce_wrong_offset), {"newton-reduction"},
        "Hillis–Steele doubling with offsets 2^k − 1 instead of 2^k",
        "issue 15 (reduction with a wrong doubling offset); ParallelSolve.parallel_reduce's d = 2^s",
        extras=_extras(_reduce_wrong_offset))
    add("pararnn-damping-on-residual", "paragru/newton", "planted-damping-on-residual",
        _with_driver(_newton_damped_residual, _form("paragru")), {"newton-damped"},
        "SOR damping ω applied to the linearised residual of the h-form instead of the Newton step (the fixed "
        "point moves for ω ≠ 1)", "issue 15 (damping applied to the residual instead of the step)")
    add("pararnn-guess-from-s0", "paragru/newton", "planted-guess-from-s0",
        _form("paragru", guess=_guess_from_s0), {"newton-prefix"},
        "initial guess s⁽⁰⁾_1 = s_0 instead of f(s_0, x_1): k iterations leave s_{k+1} inexact",
        "issue 15 (first state seeded from h_0 instead of f(0, x_1)); pararnn-torch _init_h_prev")
    add("pararnn-three-iterations", "paragru/newton", "planted-three-iterations", _three_iterations("paragru"),
        {"newton-converged"}, "Newton stops after 3 iterations while declaring no fixed count (claims convergence)",
        "issue 15 (a fixed 3 iterations on an expanding cell); Apple's NewtonConfig(max_its=3), tests commented out")
