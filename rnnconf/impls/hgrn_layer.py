"""Torch forms of ``hgrn-layer``: λ_t = γ + (1−γ)σ(f_t), h_t = λ_t e^{iθ} h_{t−1} + (1−λ_t)c_t over ℂ.

All take the spec's signature ``fn(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False,
cu_seqlens=None)`` and return complex outputs: complex128 for float64 inputs, complex64 for float32 inputs and for
float16/bfloat16 inputs (which are evaluated in float32/complex64 — there is no usable complex half dtype — and
returned as complex64, not rounded back to half).  The gates come from :mod:`rnnconf.spec.hgrn_layer`: λ and 1 − λ
are formed separately, never 1 − λ̂.

Also :func:`lower_bounds`, the torch form of the per-layer lower bounds, in two variants for the tests.
"""
from __future__ import annotations

import math

import torch

from ..spec import hgrn_layer as S
from ..spec.diagonal import combine
from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from ._common import compute_dtype, hillis_steele, varlen_by_split


def _prep(f, c_re, c_im, gamma, theta, initial_state):
    """Inputs in the compute dtype, the complex coefficients (a, b) and h_0 (complex)."""
    rd = compute_dtype(f.dtype)
    cd = S.complex_dtype(rd)
    f, c_re, c_im, gamma, theta = (t.to(rd) for t in (f, c_re, c_im, gamma, theta))
    B, T, D = f.shape
    a, b = S.coeffs(f, c_re, c_im, gamma, theta)
    h0 = initial_state.to(cd) if initial_state is not None else torch.zeros(B, D, dtype=cd, device=f.device)
    return (f, gamma, theta), a, b, h0


def _sequential(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False):
    """Python loop over t: h = a_t·h + b_t in complex arithmetic."""
    _, a, b, h = _prep(f, c_re, c_im, gamma, theta, initial_state)
    outs = []
    for t in range(f.shape[1]):
        h = a[:, t] * h + b[:, t]
        outs.append(h)
    o = torch.stack(outs, 1) if outs else b[:, :0]
    return o, (h if output_final_state else None)


def _scan(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False):
    """Hillis–Steele inclusive scan of complex (a, b) pairs with the diagonal combine; h_0 folds into b_1."""
    _, a, b, h0 = _prep(f, c_re, c_im, gamma, theta, initial_state)
    h, hT = hillis_steele(a, b, h0)
    return h, (hT if output_final_state else None)


def _log_lambda(f, gamma):
    """(ℓ, z): ℓ = log λ̂ where λ̂ ≥ 1/2 (accurate to 7u + 2u|log λ|) and 0 elsewhere; z = λ̂ where λ̂ < 1/2 and 1
    elsewhere.  Decays are e^{Σℓ}·Πz: strong gates are multiplied in directly rather than through the log.  In log
    space the gradient in γ passes through ∂log λ/∂γ = σ(−f)/λ, which multiplies the rounding residual of the
    cumulative-sum backward by up to 1/λ (and is 0·∞ once λ underflows); with λ ≥ 1/2 in log space that factor
    stays ≤ 2, and the explicit factors carry ∂λ/∂γ = σ(−f) exactly."""
    lam = S.gate(f, gamma)
    logspace = lam >= 0.5
    ell = torch.where(logspace, torch.log(lam.clamp_min(0.5)), torch.zeros_like(lam))
    z = torch.where(logspace, torch.ones_like(lam), lam)
    return ell, z


def _chunk(chunk_size):
    def run(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False):
        """Within a chunk, with L = cumsum(log λ) from the chunk start and k = i − j:
        h_i = e^{L_i} e^{iθ(i+1)} h_prev + Σ_{j≤i} e^{L_i − L_j} e^{iθk} b_j  (masked before exp, so no ∞·0).
        Strong gates (λ̂ < 1/2) enter as explicit factors rather than through L (see _log_lambda)."""
        (fr, gr, th), _, b, h = _prep(f, c_re, c_im, gamma, theta, initial_state)
        ell, z = _log_lambda(fr, gr)
        T = f.shape[1]
        rd = ell.dtype
        outs = []
        for s in range(0, T, chunk_size):
            lc, zc, bc = ell[:, s:s + chunk_size], z[:, s:s + chunk_size], b[:, s:s + chunk_size]
            C = lc.shape[1]
            L = torch.cumsum(lc, 1)  # [B, C, D]
            idx = torch.arange(C, device=f.device)
            k = (idx[:, None] - idx[None, :]).to(rd)  # [i, j]
            mask = (k >= 0)[None, :, :, None]
            diff = L[:, :, None, :] - L[:, None, :, :]  # [B, i, j, D]
            decay = torch.exp(torch.where(mask, diff, torch.full_like(diff, -math.inf)))
            into = torch.exp(L)
            if not bool((zc == 1).all()):  # some gate is strong (or NaN): multiply those factors in
                up_to_i = idx[None, :] <= idx[:, None]  # [i, s]: s ≤ i
                cross = up_to_i[:, None, :] & (idx[None, None, :] > idx[None, :, None])  # [i, j, s]: j < s ≤ i
                one = torch.ones((), dtype=rd)
                decay = decay * torch.where(cross[None, ..., None], zc[:, None, None], one).prod(3)
                into = into * torch.where(up_to_i[None, ..., None], zc[:, None], one).prod(2)
            phase = torch.polar(torch.ones_like(k[..., None] * th), k[..., None] * th)  # [i, j, D]
            # select, don't multiply by a zero mask: 0·NaN from a later b_j must not reach h_i (causality)
            terms = torch.where(mask, decay * phase[None] * bc[:, None], torch.zeros((), dtype=bc.dtype))
            ang = (idx.to(rd) + 1)[:, None] * th  # [i, D]
            o = terms.sum(2) + (into * torch.polar(torch.ones_like(ang), ang)[None]) * h[:, None]
            outs.append(o)
            h = o[:, -1]
        o = torch.cat(outs, 1) if outs else b[:, :0]
        return o, (h if output_final_state else None)

    return run


def _with_varlen(dense):
    def fn(f, c_re, c_im, gamma, theta, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is None:
            return dense(f, c_re, c_im, gamma, theta, initial_state=initial_state,
                         output_final_state=output_final_state)
        if len(cu_seqlens) == 1:  # no sequences: varlen_by_split would return a real empty o
            cd = S.complex_dtype(compute_dtype(f.dtype))
            D = f.shape[-1]
            return (torch.zeros(1, 0, D, dtype=cd, device=f.device),
                    torch.zeros(0, D, dtype=cd, device=f.device) if output_final_state else None)

        def per_seq(fs, crs, cis, initial_state=None, output_final_state=True):
            return dense(fs, crs, cis, gamma, theta, initial_state=initial_state,
                         output_final_state=output_final_state)

        return varlen_by_split(per_seq, [f, c_re, c_im], initial_state, output_final_state, cu_seqlens)

    fn.__doc__ = dense.__doc__
    return fn


sequential = _with_varlen(_sequential)
scan = _with_varlen(_scan)
chunk16 = _with_varlen(_chunk(16))

# layout_dependent: torch's CPU kernels pick their path by the operands' strides (vectorised vs scalar exp/sigmoid),
# so non-contiguous views of the same inputs round differently (found by the strided-inputs property)
_SEQ = Traits(accumulate="float32", cumsum="none", layout_dependent=True)
register_form(Target("hgrn-layer", "sequential", sequential, traits=_SEQ,
                     doc="python loop over t in complex arithmetic"))
register_form(Target("hgrn-layer", "scan", scan, traits=_SEQ, combine=combine,
                     doc="Hillis–Steele scan over complex (λe^{iθ}, (1−λ)c) pairs"))
register_form(Target("hgrn-layer", "chunk16", chunk16,
                     traits=Traits(accumulate="float32", cumsum="chunk", chunk_size=16, layout_dependent=True),
                     doc="chunkwise in log space, C = 16: decays e^{L_i − L_j} from within-chunk cumulative log λ, "
                         "phases e^{iθ(i−j)} from θ·(i−j); strong gates (λ < 1/2) are multiplied in directly, so "
                         "that ∂/∂γ stays accurate where λ is tiny or underflows"))


# ---- lower bounds -------------------------------------------------------------------------------------------
def lower_bounds(Gamma: torch.Tensor, variant: str = "direct") -> torch.Tensor:
    """γ^l for l = 0..L−1 from Γ: [L, D] (half inputs evaluated in float32; returns the compute dtype).

    ``"direct"``: the spec's definition (Σ_{j=1}^{l} P_j summed directly, capped at 1 − P_0).  ``"fla"``:
    flash-linear-attention's ``softmax(0).cumsum(0) − P_0``, kept to show where it departs (small γ^l lose their
    relative accuracy; γ^{L−1} exceeds 1 when P_0 is below a few ulps)."""
    if variant == "direct":
        return S.lower_bounds(Gamma)
    if variant == "fla":
        P = torch.softmax(Gamma.to(compute_dtype(Gamma.dtype)), 0)
        return P.cumsum(0) - P[0]
    raise ValueError(f"unknown lower_bounds variant {variant!r}")
