"""``hgrn`` — the kernel-level op of HGRN (Qin et al., "Hierarchically Gated Recurrent Neural Network for Sequence
Modeling", arXiv 2311.04823), in flash-linear-attention's convention (``fla.ops.hgrn.fused_recurrent_hgrn``):

    h_t = exp(g_t) ⊙ h_{t−1} + x_t,     o_t = h_t,     h_0 = initial_state (zeros when None)

x, g: [B, T, D] with g = log λ ≤ 0 the log forget gate; initial and final state [B, D].  Varlen: B = 1 and
``cu_seqlens`` (int32/int64, N+1 offsets) packs N sequences, initial_state then [N, D].

Error model (see :mod:`rnnconf.spec.errors`): per step ``exp`` (≤ 1 u, correctly-rounded libm up to 1 u), one
product and one add ⇒ c_step = 3, plus one for the propagation of the already-rounded state through a decay of
rounded gate ⇒ c_step = 4.  Forms that difference cumulative log-gate sums pay ``u·depth·G_t`` in the exponent of
each decay; both cumulative sums enter the difference ⇒ c_log = 2.
"""
from __future__ import annotations

import torch

from . import diagonal
from .base import Arg, Invariant, Output, Spec, register
from .domains import log_gate, real
from .errors import ErrorModel

DIMS = diagonal.SEQUENCE_DIMS


def coeffs(x: torch.Tensor, g: torch.Tensor):
    """(a_t, b_t) of the diagonal recurrence."""
    return torch.exp(g), x


def log_a(x: torch.Tensor, g: torch.Tensor):
    return g


SPEC = register(Spec(
    id="hgrn",
    title="HGRN gated diagonal linear recurrence (kernel op)",
    paper="arXiv:2311.04823",
    version="1",
    math="h_t = exp(g_t) ⊙ h_{t−1} + x_t;  o_t = h_t;  h_0 = initial_state or 0",
    signature="fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None) -> (o, final_state)",
    dims=DIMS,
    args=(
        Arg("x", ("B", "T", "D"), real(scale=1.0, edges=(0.0, 1e3, -1e3)), doc="input (already gated) x_t"),
        Arg("g", ("B", "T", "D"), log_gate(), doc="log forget gate g_t = log λ_t ≤ 0"),
        Arg("initial_state", ("B", "D"), real(), kind="state", optional=True, doc="h_0"),
    ),
    outputs=(
        Output("o", ("B", "T", "D"), "o_t = h_t"),
        Output("final_state", ("B", "D"), "h_T (when output_final_state)", state=True),
    ),
    forms=("sequential", "scan", "chunk", "triton-fused", "triton-scan"),
    invariants=(
        Invariant("combine-associative", "a scan's combine is the spec's (a₁, b₁)∘(a₂, b₂) = (a₁a₂, a₂b₁ + b₂) and "
                  "(p∘q)∘r = p∘(q∘r) (exact in mpmath, within the bound in floats)"),
        Invariant("tied-gate-bound", "with x_t = (1 − λ_t) c_t: |h_t| ≤ max(|h_0|, max_{s≤t} |c_s|)"),
        Invariant("reset-forgets", "g_t at the log-gate floor (exp underflows to 0 in every format) ⇒ h_t = x_t: "
                  "the past is forgotten exactly", tolerance="exact"),
    ),
    error_model=ErrorModel(c_step=4.0, c_log=2.0, c_out=1.0, doc=__doc__.split("Error model")[1].strip()),
    extra={"coeffs": coeffs, "log_a": log_a, "reference_form": "sequential", "family": "diagonal",
           "independent_axes": ("B", "D")},
))
