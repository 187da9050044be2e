"""DeltaProduct (Siems et al., "DeltaProduct: Improving State-Tracking in Linear RNNs via Householder Products",
arXiv 2502.10297), gated as in flash-linear-attention's ``chunk_gated_delta_product``: n_h delta-rule sub-steps per
token, the gate once before the first, the query read after the last (state S ∈ ℝ^{K×V}):

    S_{t,0} = α_t S_{t−1};   S_{t,j} = (I − β_{t,j} k_{t,j} k_{t,j}ᵀ) S_{t,j−1} + β_{t,j} k_{t,j} v_{t,j}ᵀ  (j = 1…n_h);
    S_t = S_{t,n_h};   o_t = S_tᵀ (s q_t),   α_t = exp(g_t), g_t ≤ 0.

Equivalently S_t = α_t A_t S_{t−1} + B_t with A_t = H_{t,n_h}⋯H_{t,1} (the first sub-step rightmost) — a product of
generalised Householder reflections whose eigenvalues lie in the unit disk for unit keys and β ∈ [0, 2]; that is
what gives DeltaProduct its state tracking.  The factor order matters.

LAYOUT (fla's): q [B, T, H, K], g [B, T, H]; k [B, T·n_h, H, K], v [B, T·n_h, H, V], beta [B, T·n_h, H] with
sub-step j of token t at row t·n_h + j; ``num_householder`` = n_h; ``cu_seqlens`` counts tokens (sequence n owns
rows [cu_n·n_h, cu_{n+1}·n_h) of k, v, beta).  Domain and key normalisation (``use_qk_l2norm_in_kernel``: every
q and k row, sub-step keys included) as :mod:`rnnconf.spec.delta`.

ERROR MODEL: the gated delta rule's, on the interleaved sequence of T·n_h sub-steps (gate at sub-step 0, query at
sub-step n_h − 1): per sub-step local error e and propagation ρ as there, the output of token t charged the
accumulated error after its last sub-step; chunkwise forms (which run on the interleaved sequence, as fla does)
pay their chunks' κ_∞(I + A) over sub-steps.
"""
from __future__ import annotations

import torch

from .base import Arg, Dim, Invariant, Output, Spec, pow2_boundaries, register
from .delta import (
    BETA,
    DELTA_DIMS,
    DELTA_ERROR,
    NORM_INVARIANTS,
    QK_L2NORM_GRAD_INVARIANT,
    QK_L2NORM_INVARIANT,
    chunk_condition,
    delta_grad_magnitudes,
)
from .domains import Domain, log_gate, real

DP_DIMS = {**DELTA_DIMS, "N": Dim("N", 1, 8, edges=(1, 2, 3), doc="Householder sub-steps per token (n_h)",
                                  boundaries=pow2_boundaries(4, 8))}


def spread(x: torch.Tensor, n_h: int, j: int) -> torch.Tensor:
    """[B, T, ...] → [B, T·n_h, ...] with x at sub-step j of each token and zeros elsewhere (fla's reduction puts
    the gate at j = 0 and the query at j = n_h − 1)."""
    out = x.new_zeros(x.shape[0], x.shape[1], n_h, *x.shape[2:])
    out[:, :, j] = x
    return out.flatten(1, 2)


def dp_chunk_condition(k, beta, g, chunk: int, n_h: int = 1):
    """κ_∞(I + A_c) per sub-step [B, T·n_h, H] of a chunk form over the interleaved sequence."""
    return chunk_condition(k, beta, spread(g, n_h, 0) if g is not None else None, chunk)


def dp_grad_magnitudes(inputs: dict, h0, do, dht, cumsum: bool = False, traits=None, c_n: float = 0.0) -> dict:
    """The gated delta rule's gradient model on the interleaved sequence (do placed at the last sub-step), read back:
    dq at each token's last sub-step, dg at its first (:func:`rnnconf.spec.delta.delta_grad_magnitudes`)."""
    n = int(inputs["num_householder"])
    q, g = inputs["q"], inputs["g"]
    flat = {"q": spread(q.double(), n, n - 1), "k": inputs["k"], "v": inputs["v"], "beta": inputs["beta"],
            "g": spread(g.double(), n, 0)}
    doi = spread(do.double(), n, n - 1)
    res = delta_grad_magnitudes(flat, h0, doi, dht, cumsum, traits, c_n)
    B, T = q.shape[:2]

    def pick(x, j):
        return x.reshape(B, T, n, *x.shape[2:])[:, :, j]

    res["q"] = tuple(pick(x, n - 1) for x in res["q"])
    res["g"] = tuple(pick(x, 0) for x in res["g"])
    return res


DELTA_PRODUCT = register(Spec(
    id="delta-product", title="Gated DeltaProduct (Householder products, n_h sub-steps per token)",
    paper="arXiv:2502.10297", version="1",
    math="S_t = α_t H_{t,n_h}⋯H_{t,1} S_{t−1} + B_t  (sub-steps S ← (I − β k kᵀ)S + β k vᵀ, gate before the first); "
         "o_t = S_tᵀ (s·q_t)",
    signature="fn(q, k, v, g, beta, num_householder, scale=None, initial_state=None, output_final_state=False, "
              "cu_seqlens=None, use_qk_l2norm_in_kernel=False) -> (o, final_state)",
    dims=DP_DIMS,
    args=(Arg("q", ("B", "T", "H", "K"), real(1.0, edges=(0.0,)), doc="queries (read after the last sub-step)"),
          Arg("k", ("B", "T*N", "H", "K"), real(1.0, edges=(0.0, 1.0)), doc="keys, n_h per token (unit drawn)"),
          Arg("v", ("B", "T*N", "H", "V"), real(1.0, edges=(0.0, 1e2, -1e2)), doc="values, n_h per token"),
          Arg("g", ("B", "T", "H"), log_gate(floor=-1e3), doc="log decay g_t = log α_t ≤ 0, once per token"),
          Arg("beta", ("B", "T*N", "H"), BETA, doc="writing strengths β_{t,j} ∈ [0, 2]"),
          Arg("num_householder", ("N",), Domain("num_householder", lo=1), kind="static", differentiable=False,
              doc="n_h"),
          Arg("initial_state", ("B", "H", "K", "V"), real(1.0), kind="state", optional=True, doc="S_0")),
    outputs=(Output("o", ("B", "T", "H", "V"), "o_t = S_tᵀ (s q_t)"),
             Output("final_state", ("B", "H", "K", "V"), "S_T (when output_final_state)", state=True)),
    forms=("sequential", "scan", "chunk-wy"),
    invariants=(
        Invariant("delta-spectrum", "A_t = H_{t,n_h}⋯H_{t,1}: ‖A_t‖₂ ≤ 1 and every eigenvalue in the unit disk for "
                  "unit keys and β ∈ [0, 2] (real, in [−1, 1], only for n_h = 1); det A_t = Π_j(1 − β_j‖k_j‖²); "
                  "rank(A_t − I) ≤ n_h; β ≡ 2 ⇒ A_t orthogonal — checked by the oracle on every example",
                  checked_by="rnnconf/spec/delta.py::spectral_check"),
        *NORM_INVARIANTS,
        Invariant("dp-interleaved", "equals gated-delta-rule on the interleaved sequence (gate at sub-step 0, query "
                  "at the last), every n_h-th output"),
        Invariant("dp-nh1", "n_h = 1 is the gated delta rule"),
        Invariant("dp-ungated", "g ≡ 0 is the delta rule on the interleaved sequence"),
        Invariant("delta-retrieval", "β = 1 at a token's last sub-step with a unit key: S_tᵀ k = v"),
        QK_L2NORM_INVARIANT,
        QK_L2NORM_GRAD_INVARIANT,
    ),
    error_model=DELTA_ERROR,
    extra={"family": "matrix", "reference_form": "sequential", "independent_axes": ("B", "H"), "unit_rows": ("k",),
           "gated": True, "householder": True, "chunk_condition": dp_chunk_condition,
           "grad_magnitudes": dp_grad_magnitudes},
))
