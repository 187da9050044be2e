"""Matrix-state delta-rule recurrences, in flash-linear-attention's convention (state S ∈ ℝ^{K×V}, o_t = S_tᵀ(s·q_t)):

* ``delta-rule`` (DeltaNet; Yang et al., "Parallelizing Linear Transformers with the Delta Rule over Sequence
  Length", arXiv 2406.06484):   S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ
* ``gated-delta-rule`` (Yang, Kautz, Hatamizadeh, "Gated Delta Networks", arXiv 2412.06464):
  S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,   α_t = exp(g_t), g_t ≤ 0

q, k: [B, T, H, K]; v: [B, T, H, V]; beta, g: [B, T, H]; initial/final state [B, H, K, V]; s = scale or 1/√K.
DOMAIN: β ∈ [0, 2] (the [0, 1] sub-domain is drawn too); keys are drawn L2-normalised (‖k_t‖ = 1 up to the rounding
of the input dtype) — the eigenvalue claims rely on it: with ‖k‖ = 1 the transition I − βkkᵀ has eigenvalue 1
(multiplicity K − 1) and 1 − β, so its spectrum lies in [1 − β, 1] ⊆ [−1, 1] and ‖A_t‖₂ = max(1, |1 − β‖k‖²|) ≤ 1.
The op itself accepts any keys; fla normalises only with ``use_qk_l2norm_in_kernel``.

ERROR MODEL (normwise — an elementwise magnitude shadow through |I − βkkᵀ| grows like (1 + 2K)^t and says nothing).
A rounding error in S propagates through ρ_t = α_t·max(1, |1 − β_t‖k_t‖²|) ≤ 1 per step.  Step t of the sequential
evaluation commits, in ‖·‖_F and units of u: the K-long dots kᵀS (K·‖k‖‖S‖), the rank-one update and the subtraction
(c·|β|‖k‖²‖S‖ + c·|β|‖k‖‖v‖), the gate (α‖S‖) ⇒ e_t = (K + 4)(1 + |β_t|‖k_t‖²)‖S_{t−1}‖_F + 4|β_t|‖k_t‖‖v_t‖, and
E_t = ρ_t E_{t−1} + e_t.  The output o_t = S_tᵀ(s q_t) adds the V dots of length K: |ô_t − o_t| ≤
u·(E_t + (K + 2)‖S_t‖_F)·s‖q_t‖.  The oracle returns these as the ``cond`` term (mag = s‖q‖‖S‖_F, so the output
rounding u_out·c_out·mag is charged too).  Chunkwise (WY/UT) forms solve (I + A)x = b per chunk by forward
substitution: their local error is amplified by the condition κ_∞(I + A) of that chunk's unit-triangular matrix —
large for β near 2 with near-collinear keys — so :func:`chunk_condition` charges each step (1 + C·κ_c) times e_t
(computed from the inputs for the form's declared chunk size), and gated chunk forms pay c_log·depth·G for the
within-chunk cumulative log-gate sums.
"""
from __future__ import annotations

import math

import torch

from .base import Arg, Dim, Invariant, Output, Spec, register
from .domains import Domain, log_gate, real
from .errors import ErrorModel

DELTA_DIMS = {
    "B": Dim("B", 1, 8, edges=(1,), doc="batch"),
    "T": Dim("T", 1, 16384, edges=(1, 2, 3, 17, 31, 63, 64, 65), doc="sequence length"),
    "H": Dim("H", 1, 32, edges=(1,), doc="heads"),
    "K": Dim("K", 1, 256, edges=(1, 2, 16), doc="key dim"),
    "V": Dim("V", 1, 256, edges=(1, 16), doc="value dim"),
}

BETA = Domain("beta", lo=0.0, hi=2.0, center=1.0, scale=0.6, law="uniform", edges=(0.0, 1.0, 2.0, 1.0 - 2.0**-10,
                                                                               2.0 - 2.0**-10),
              doc="β ∈ [0, 2]: [0, 1] keeps the spectrum in [0, 1], (1, 2] reaches negative eigenvalues")
DELTA_ERROR = ErrorModel(c_step=1.0, c_log=2.0, c_out=2.0, doc=__doc__.split("ERROR MODEL")[1].strip())


def _args(gated: bool):
    a = [Arg("q", ("B", "T", "H", "K"), real(1.0, edges=(0.0,)), doc="queries"),
         Arg("k", ("B", "T", "H", "K"), real(1.0, edges=(0.0, 1.0)), doc="keys (drawn L2-normalised)"),
         Arg("v", ("B", "T", "H", "V"), real(1.0, edges=(0.0, 1e2, -1e2)), doc="values")]
    if gated:  # fla's order: g before beta (arguments are passed positionally)
        a.append(Arg("g", ("B", "T", "H"), log_gate(floor=-1e3), doc="log decay g_t = log α_t ≤ 0"))
    a.append(Arg("beta", ("B", "T", "H"), BETA, doc="writing strength β_t ∈ [0, 2]"))
    a.append(Arg("initial_state", ("B", "H", "K", "V"), real(1.0), kind="state", optional=True, doc="S_0"))
    return tuple(a)


def transitions(k: torch.Tensor, beta: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    """α_t (I − β_t k_t k_tᵀ) as [B, T, H, K, K] (float64)."""
    k, beta = k.double(), beta.double()
    K = k.shape[-1]
    A = torch.eye(K, dtype=torch.float64) - beta[..., None, None] * k[..., :, None] * k[..., None, :]
    if g is not None:
        A = torch.exp(g.double())[..., None, None] * A
    return A


def chunk_condition(k: torch.Tensor, beta: torch.Tensor, g: torch.Tensor | None, chunk: int) -> torch.Tensor:
    """κ_∞(I + A_c) per step [B, T, H] for chunks of ``chunk`` steps, A_c = strict_tril(diag(β) K Kᵀ ⊙ Γ) with
    Γ_ij = exp(G_i − G_j) — the matrix a WY/UT chunk form inverts by forward substitution (float64, exact enough for
    a condition estimate)."""
    B, T, H, K = k.shape
    out = torch.ones(B, T, H, dtype=torch.float64)
    kk, bb = k.double(), beta.double()
    for s in range(0, T, chunk):
        kc, bc = kk[:, s:s + chunk].transpose(1, 2), bb[:, s:s + chunk].transpose(1, 2)  # [B, H, C, ·]
        C = kc.shape[2]
        A = bc[..., None] * (kc @ kc.transpose(-1, -2))
        if g is not None:
            G = torch.cumsum(g[:, s:s + chunk].double().transpose(1, 2), -1)
            A = A * torch.exp((G[..., :, None] - G[..., None, :]).clamp(max=0))
        M = torch.eye(C, dtype=torch.float64) + A.tril(-1)
        Minv = torch.linalg.solve_triangular(M, torch.eye(C, dtype=torch.float64).expand_as(M).contiguous(),
                                             upper=False, unitriangular=True)
        kap = M.abs().sum(-1).amax(-1) * Minv.abs().sum(-1).amax(-1)  # [B, H]
        kap = torch.where(torch.isfinite(kap), kap, torch.full_like(kap, math.inf))
        out[:, s:s + chunk] = kap[:, None, :]
    return out


def _make(spec_id, title, paper, gated):
    math_ = ("S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, α_t = exp(g_t)" if gated
             else "S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ") + ";  o_t = S_tᵀ (s·q_t)"
    sig = ("fn(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None)"
           if gated else "fn(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, "
                         "cu_seqlens=None)") + " -> (o, final_state)"
    return register(Spec(
        id=spec_id, title=title, paper=paper, version="1", math=math_, signature=sig, dims=DELTA_DIMS,
        args=_args(gated),
        outputs=(Output("o", ("B", "T", "H", "V"), "o_t = S_tᵀ (s q_t)"),
                 Output("final_state", ("B", "H", "K", "V"), "S_T (when output_final_state)", state=True)),
        forms=("sequential", "chunk-wy"),
        invariants=(
            Invariant("delta-spectrum", "every transition α_t(I − β_t k_t k_tᵀ) has eigenvalues in [−1, 1] for "
                      "β ∈ [0, 2] and unit keys ([0, 1] for β ∈ [0, 1]); ‖α_t A_t‖₂ ≤ α_t ≤ 1; det A_t = "
                      "1 − β_t‖k_t‖²; β = 2 ⇒ A_t orthogonal (checked in float64 on the exact inputs)"),
            Invariant("delta-retrieval", "β_t = 1 with a unit key: S_tᵀ k_t = v_t (exact retrieval of the value just "
                      "written), gated or not"),
        ),
        error_model=DELTA_ERROR,
        extra={"family": "matrix", "reference_form": "sequential", "independent_axes": ("B", "H"),
               "unit_rows": ("k",), "chunk_condition": chunk_condition, "gated": gated},
    ))


DELTA_RULE = _make("delta-rule", "DeltaNet delta rule (matrix state)", "arXiv:2406.06484", gated=False)
GATED_DELTA_RULE = _make("gated-delta-rule", "Gated DeltaNet (gated delta rule)", "arXiv:2412.06464", gated=True)
