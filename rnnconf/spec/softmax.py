"""Shared math and error model of causal softmax attention read as a normalised recurrence (FoX, ACP, Aaren).

Row i of causal attention with scores z_ij = s·q_iᵀk_j + D_ij (D = 0 for plain attention, the forget-gate decay bias
for FoX) is

    o_i = Σ_{j≤i} P_ij v_j,   P_ij = exp(z_ij − m_i) / ℓ_i,   ℓ_i = Σ_{j≤i} exp(z_ij − m_i),   m_i = max_j z_ij.

ERROR MODEL.  A form commits, on score ij, a relative error ε_ij·u on the unnormalised weight exp(z_ij − m_i):

    ε_ij = (K + 2)·a_ij + 3·|z_ij − m_i| + 2·|D_ij| + 4,      a_ij = s·Σ_k |q_ik k_jk|

— the dot product (γ_K, plus the scale and the add of D), the rounding of the exponent's argument before exp (the
subtraction of the running max and, in flash kernels, the multiply by log₂e; a running max m' ≤ m_i only shrinks
|z − m'|, and the rescale exp(m' − m_i) is charged to the same term), the addition of D, and exp/normalisation.
An error in the max itself cancels between numerator and denominator, as does a rescale factor applied to both.
The normalisation divides by ℓ_i whose relative error is the *weighted* mean ε̄_i = Σ_j P_ij ε_ij, so

    |ô_i − o_i| ≤ u_acc·( Σ_j P_ij ε_ij |v_j| + ε̄_i·m_i  +  c_step·(i+1)·m_i ) + u_out·c_out·m_i,
    m_i = Σ_j P_ij |v_j|   (the magnitude shadow; |o_i| ≤ m_i ≤ max_j |v_j|).

The first two terms are the oracle's ``cond`` (see :mod:`rnnconf.spec.errors`), computed from the exact weights, so a
score with weight 0 costs nothing however large its ε.  c_step = 2: the accumulation of Σ_j P_ij v_j (and of ℓ_i) in
a chain of ≤ i+1 adds.  c_out = 3: the output rounding, plus the rounding of P to the input dtype before the P·V
product and the ℓ accumulated from unrounded P that flash kernels do.  Forms that form D_ij as a difference c_i − c_j
of cumulative log-gate sums pay |ĉ_i − c_i| ≤ u·depth·G_i (G_i = Σ_{l≤i}|g_l|) on each of two cumsum entries, in the
numerator and again through ℓ_i ⇒ c_log = 4 on the log-mass term.  ``Traits.matmul = "tf32"`` raises u_acc to 2⁻¹¹
for all of it (conservative: the dot products are the tf32 part).
"""
from __future__ import annotations

import math

import torch

from .base import Dim, pow2_boundaries
from .errors import ErrorModel

# ``boundaries``: the boundary probes' sizes (rnnconf.properties.probes), within each range (K, V ≤ 256: the head
# dims fla's attention kernels accept, so 257 is not probed)
ATTENTION_DIMS = {
    "B": Dim("B", 1, 8, edges=(1,), doc="batch", boundaries=pow2_boundaries(4, 8)),
    "T": Dim("T", 1, 16384, edges=(1, 2, 3, 17, 31, 63, 64, 65, 127, 128, 129), doc="sequence length",
             boundaries=pow2_boundaries(16, 4097)),
    "H": Dim("H", 1, 32, edges=(1,), doc="heads", boundaries=pow2_boundaries(4, 32)),
    "K": Dim("K", 1, 256, edges=(1, 16, 64), doc="query/key head dim", boundaries=pow2_boundaries(16, 256)),
    "V": Dim("V", 1, 256, edges=(1, 16, 64), doc="value head dim", boundaries=pow2_boundaries(16, 256)),
}

ATTENTION_ERROR = ErrorModel(c_step=2.0, c_log=4.0, c_out=3.0, doc=__doc__.split("ERROR MODEL.")[1].strip())


def default_scale(K: int) -> float:
    return 1.0 / math.sqrt(K)


def score_eps(K: int, a: float, z_minus_m: float, d: float) -> float:
    """ε_ij of the error model above, in units of u (float arguments)."""
    return (K + 2) * a + 3.0 * abs(z_minus_m) + 2.0 * abs(d) + 4.0


def grad_magnitudes(P: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor,
                    eps: torch.Tensor, scale: float, logmass: torch.Tensor | None = None,
                    cumsum_depth: torch.Tensor | None = None) -> dict:
    """(magnitude, cond) pairs bounding each gradient of attention, for one layout [B, H, T, ·] (float64).

    With dP_ij = do_i·v_j, Δ_i = do_i·o_i, dS_ij = P_ij (dP_ij − Δ_i):  dv_j = Σ_i P_ij do_i,
    dq_i = s Σ_j dS_ij k_j, dk_j = s Σ_i dS_ij q_i, and for a decay bias D_ij = Σ_{j<l≤i} g_l,
    dg_l = Σ_{i≥l} Σ_{j<l} dS_ij  (row sums of dS vanish, so forms may use −Σ_{i≥l} colsum or rowsum − colsum; the
    magnitude covers both).  Each summand is charged its score's ε_ij plus the weighted ε̄_i of its row (the same
    roundoffs as in the forward pass), plus the depth of the V- and K-long dot products; cumsum forms add
    c_log·depth·G_i to every ε of row i."""
    Vd, Kd = v.shape[-1], q.shape[-1]
    e = eps.clone()
    if logmass is not None and cumsum_depth is not None:
        e = e + ATTENTION_ERROR.c_log * (cumsum_depth * logmass)[..., :, None]
    ebar = (P * e).sum(-1, keepdim=True)
    e_tot = e + ebar + Vd + 2
    o_mag = P @ v.abs()
    mdP = do.abs() @ v.abs().transpose(-1, -2)  # [.., i, j]
    mDelta = (do.abs() * o_mag).sum(-1, keepdim=True)
    mdS = P * (mdP + mDelta)
    cdS = mdS * e_tot
    out = {
        "v": (P.transpose(-1, -2) @ do.abs(), (P * e_tot).transpose(-1, -2) @ do.abs()),
        "q": (scale * mdS @ k.abs(), scale * cdS @ k.abs() + Kd * scale * mdS @ k.abs()),
        "k": (scale * mdS.transpose(-1, -2) @ q.abs(), scale * cdS.transpose(-1, -2) @ q.abs()
              + Kd * scale * mdS.transpose(-1, -2) @ q.abs()),
    }
    row, col = mdS.sum(-1), mdS.sum(-2)
    crow, ccol = cdS.sum(-1), cdS.sum(-2)
    rev = lambda x: torch.flip(torch.cumsum(torch.flip(x, [-1]), -1), [-1])  # noqa: E731  Σ_{i ≥ l}
    T = P.shape[-1]
    steps = torch.arange(1, T + 1, dtype=torch.float64)
    out["g"] = (rev(row + col), rev(crow + ccol) + (T - steps + 1) * rev(row + col))
    return out
