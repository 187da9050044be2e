"""Matrix-state delta-rule recurrences, in flash-linear-attention's convention (state S ∈ ℝ^{K×V}, o_t = S_tᵀ(s·q_t)):

* ``delta-rule`` (DeltaNet; Yang et al., "Parallelizing Linear Transformers with the Delta Rule over Sequence
  Length", arXiv 2406.06484):   S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ
* ``gated-delta-rule`` (Yang, Kautz, Hatamizadeh, "Gated Delta Networks", arXiv 2412.06464):
  S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,   α_t = exp(g_t), g_t ≤ 0

q, k: [B, T, H, K]; v: [B, T, H, V]; beta, g: [B, T, H]; initial/final state [B, H, K, V]; s = scale or 1/√K.
DOMAIN: β ∈ [0, 2] (the [0, 1] sub-domain is drawn too); keys are drawn L2-normalised (‖k_t‖ = 1 up to the rounding
of the input dtype) — the eigenvalue claims rely on it: with ‖k‖ = 1 the transition I − βkkᵀ has eigenvalue 1
(multiplicity K − 1) and 1 − β, so its spectrum lies in [1 − β, 1] ⊆ [−1, 1] and ‖A_t‖₂ = max(1, |1 − β‖k‖²|) ≤ 1.
The op itself accepts any keys.

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

NORMALISATION MODE (fla's ``use_qk_l2norm_in_kernel=True``): the op first maps every query and key row to
x̂ = x / √(Σ_i x_i² + ε), ε = 1e-6 (fla's ``l2norm_fwd`` and its in-kernel variant), and runs the recurrence on q̂, k̂
(so ‖k̂‖ < 1, the spectral claims hold for any raw keys, and a zero row stays zero).  Judged by the
``delta-qk-l2norm`` property on raw rows of norm 10^−30 … 10^3.  The form's x̂ differs from the exact one by a
relative (K/2 + 3)u_acc (the K-long sum of squares, ε, the square root, the division) plus u_in when x̂ is stored in
the input dtype (fla's l2norm does): c_n = K/2 + 3 + u_in/u_acc in units of u_acc.  An input perturbation, it is
not amplified by a chunk form's κ: a relative δ in k̂ perturbs the step by β(δk̂ k̂ᵀ + k̂ δk̂ᵀ)S + β δk̂ vᵀ, so step t
adds c_n(2|β|‖k̂‖²‖S_{t−1}‖_F + |β|‖k̂‖‖v‖) to e_t, and the read adds c_n·s‖q̂‖‖S_t‖_F to the output term.
"""
from __future__ import annotations

import math

import torch

from .base import Arg, Dim, Invariant, Output, Spec, pow2_boundaries, register
from .domains import Domain, log_gate, real
from .errors import ErrorModel, unit_roundoff

QK_L2NORM_EPS = 1e-6  # x̂ = x / √(Σx² + ε), fla's l2norm default
QK_L2NORM = "use_qk_l2norm_in_kernel"  # fla's keyword for the normalisation mode


def l2norm_coefficient(K: int, dtype: torch.dtype, u_acc: float) -> float:
    """c_n: the relative error of a normalised row, in units of u_acc (module docstring, NORMALISATION MODE)."""
    return K / 2 + 3 + unit_roundoff(dtype) / u_acc

DELTA_DIMS = {  # boundaries: the boundary probes' sizes (rnnconf.properties.probes), within each range
    "B": Dim("B", 1, 8, edges=(1,), doc="batch", boundaries=pow2_boundaries(4, 8)),
    "T": Dim("T", 1, 16384, edges=(1, 2, 3, 17, 31, 63, 64, 65), doc="sequence length",
             boundaries=pow2_boundaries(16, 4097)),
    "H": Dim("H", 1, 32, edges=(1,), doc="heads", boundaries=pow2_boundaries(4, 32)),
    "K": Dim("K", 1, 256, edges=(1, 2, 16), doc="key dim", boundaries=pow2_boundaries(16, 256)),
    "V": Dim("V", 1, 256, edges=(1, 16), doc="value dim", boundaries=pow2_boundaries(16, 256)),
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


QK_L2NORM_INVARIANT = Invariant(
    "delta-qk-l2norm", "use_qk_l2norm_in_kernel=True: the op on raw q, k equals the op on q̂ = q/√(Σq² + ε), "
    "k̂ = k/√(Σk² + ε), ε = 1e-6, row by row (normalisation in high precision by the oracle)")
QK_L2NORM_GRAD_INVARIANT = Invariant(
    "delta-qk-l2norm-gradients", "use_qk_l2norm_in_kernel=True: gradients through the normalisation agree with "
    "float64 autograd of the reference form in the same mode, within the gradient model carried back through "
    "dx = r(dx̂ − x̂(x̂·dx̂)), r = 1/√(Σx² + ε)")
# observed through the state: v ≡ 0 leaves S_T = (Π A_t) S_0, whose norm the spectrum bounds
NORM_INVARIANTS = (
    Invariant("delta-nonexpansive", "v ≡ 0: ‖S_T‖_F ≤ Π_t α_t‖A_t‖₂ ‖S_0‖_F (≤ ‖S_0‖_F for unit keys and "
              "β ∈ [0, 2]): the transitions never amplify the state"),
    Invariant("delta-orthogonal", "v ≡ 0, β ≡ 2, g ≡ 0: every transition is a product of Householder reflections, "
              "so ‖S_T‖_F = ‖S_0‖_F (within the bound in floats)"),
)


def _make(spec_id, title, paper, gated):
    math_ = ("S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, α_t = exp(g_t)" if gated
             else "S_t = (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ") + ";  o_t = S_tᵀ (s·q_t)"
    sig = ("fn(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, "
           if gated else "fn(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, "
                         "cu_seqlens=None, ") + "use_qk_l2norm_in_kernel=False) -> (o, final_state)"
    return register(Spec(
        id=spec_id, title=title, paper=paper, version="1", math=math_, signature=sig, dims=DELTA_DIMS,
        args=_args(gated),
        outputs=(Output("o", ("B", "T", "H", "V"), "o_t = S_tᵀ (s q_t)"),
                 Output("final_state", ("B", "H", "K", "V"), "S_T (when output_final_state)", state=True)),
        forms=("sequential", "chunk-wy"),
        invariants=(
            Invariant("delta-spectrum", "every transition α_t(I − β_t k_t k_tᵀ) has eigenvalues in [−1, 1] for "
                      "β ∈ [0, 2] and unit keys ([0, 1] for β ∈ [0, 1]); ‖α_t A_t‖₂ ≤ α_t ≤ 1; det A_t = "
                      "1 − β_t‖k_t‖²; β = 2 ⇒ A_t orthogonal (checked in float64 on the exact inputs by the oracle, "
                      "on every example)", checked_by="rnnconf/spec/delta.py::spectral_check"),
            *NORM_INVARIANTS,
            Invariant("delta-retrieval", "β_t = 1 with a unit key: S_tᵀ k_t = v_t (exact retrieval of the value just "
                      "written), gated or not"),
            QK_L2NORM_INVARIANT,
            QK_L2NORM_GRAD_INVARIANT,
        ),
        error_model=DELTA_ERROR,
        extra={"family": "matrix", "reference_form": "sequential", "independent_axes": ("B", "H"),
               "unit_rows": ("k",), "chunk_condition": chunk_condition, "gated": gated,
               "grad_magnitudes": delta_grad_magnitudes},
    ))


def delta_grad_magnitudes(inputs: dict, h0, do, dht, cumsum: bool = False, traits=None, c_n: float = 0.0) -> dict:
    """(magnitude, cond) per gradient, normwise like the forward model (float64, broadcast to each input's shape).

    Adjoint: Λ_t = ∂L/∂S_t = s q_t do_tᵀ + A_{t+1}ᵀ Λ_{t+1} (+ dht at T), with rounding error
    F_t = ρ_{t+1}F_{t+1} + f_t,
    f_t = (K + 4)(1 + |β|‖k‖²)‖Λ_{t+1}‖ + (V + 2)s‖q_t‖‖do_t‖ (mirror of the forward e_t); the forward error E_t as in
    the module docstring.  With u_t = S_{t−1}ᵀk_t:  dq_t = s S_t do_t,  dv_t = β Λ_tᵀ k_t,
    dβ_t = k_tᵀ Λ_t (v_t − α u_t),  dk_t = β Λ_t (v_t − α u_t) − αβ S_{t−1} Λ_tᵀ k_t,
    dg_t = α ⟨Λ_t, S_{t−1} − β k_t u_tᵀ⟩,  dS_0 = A_1ᵀ Λ_1.  Each is charged (error of its factors) × (norms of the
    others) + (length of its longest dot or sum + 4) × its magnitude.  Chunkwise forms multiply e_t and f_t by their
    chunk's 1 + C·κ_∞(I + A), as in the forward, and, gated, pay c_log·min(T, C)·Σ_t|g_t| × each magnitude for the
    rounding of their within-chunk cumulative log-gate sums (the forward's log-mass term).  ``c_n`` > 0 (the
    normalisation mode, ``inputs`` holding q̂, k̂): the rows' relative error c_n·u enters unamplified — e_t as in the
    forward, f_t by c_n(s‖q̂‖‖do‖ + 2|β|‖k̂‖²‖Λ‖), and c_n × magnitude once per k̂ factor of each formula (dv, dk:
    one; dβ, dg: two)."""
    q, k, v, beta = (inputs[n].double() for n in ("q", "k", "v", "beta"))
    g = inputs.get("g")
    g = g.double() if g is not None else None
    B, T, H, K = q.shape
    V = v.shape[-1]
    s = 1.0 / math.sqrt(K)
    al = torch.exp(g) if g is not None else torch.ones_like(beta)
    kn = k.norm(dim=-1)
    vn = v.norm(dim=-1)
    qn = s * q.norm(dim=-1)
    don = do.double().norm(dim=-1)
    kap = torch.ones(B, T, H, dtype=torch.float64)
    if traits is not None and traits.chunk_size and T:
        kap = 1 + min(T, traits.chunk_size) * chunk_condition(k, beta, g, traits.chunk_size)
    rho = al * torch.maximum(torch.ones_like(beta), (1 - beta * kn**2).abs())
    S = h0.double() if h0 is not None else torch.zeros(B, H, K, V, dtype=torch.float64)
    Sn_prev, Sn, un, E_prev, E = [], [], [], [], []
    Et = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        n_prev = S.norm(dim=(-2, -1))
        Sn_prev.append(n_prev)
        E_prev.append(Et)
        u_t = torch.einsum("bhk,bhkv->bhv", k[:, t], S)
        un.append(u_t.norm(dim=-1))
        S = al[:, t, :, None, None] * (S - beta[:, t, :, None, None] * k[:, t, :, :, None] * u_t[..., None, :]) \
            + beta[:, t, :, None, None] * k[:, t, :, :, None] * v[:, t, :, None, :]
        e = (K + 4) * (1 + beta[:, t].abs() * kn[:, t] ** 2) * n_prev + 4 * beta[:, t].abs() * kn[:, t] * vn[:, t]
        e_n = c_n * beta[:, t].abs() * (2 * kn[:, t] ** 2 * n_prev + kn[:, t] * vn[:, t])
        Et = rho[:, t] * Et + e * kap[:, t] + e_n
        Sn.append(S.norm(dim=(-2, -1)))
        E.append(Et)
    # adjoint norms
    Ln = [None] * T
    F = [None] * T
    Lam = dht.double().norm(dim=(-2, -1)) if dht is not None else torch.zeros(B, H, dtype=torch.float64)
    Ft = torch.zeros(B, H, dtype=torch.float64)
    for t in reversed(range(T)):
        local = qn[:, t] * don[:, t]
        nxt = rho[:, t + 1] if t + 1 < T else torch.ones_like(Lam)
        f = (V + 2) * local + ((K + 4) * (1 + beta[:, t + 1].abs() * kn[:, t + 1] ** 2) * Lam if t + 1 < T else 0)
        f_n = c_n * (local + (2 * beta[:, t + 1].abs() * kn[:, t + 1] ** 2 * Lam if t + 1 < T else 0))
        Ft = nxt * Ft + f * kap[:, t] + f_n
        Lam = local + nxt * Lam
        Ln[t], F[t] = Lam, Ft
    z = torch.zeros(B, 0, H, dtype=torch.float64)
    st = (lambda xs: torch.stack(xs, 1) if T else z)  # noqa: E731
    Sp, Sc, U, Ep, Ec, L, Fv = st(Sn_prev), st(Sn), st(un), st(E_prev), st(E), st(Ln), st(F)
    b, a = beta.abs(), al
    w = vn + a * U  # ‖v − αu‖ ≤ ‖v‖ + α‖u‖
    out = {}
    m_q = s * Sc * don  # s‖S_t‖‖do_t‖
    out["q"] = (m_q, s * don * Ec + (V + 4) * m_q)
    m_v = b * L * kn
    out["v"] = (m_v, b * kn * Fv + (K + 4 + c_n) * m_v)
    m_b = kn * L * w
    out["beta"] = (m_b, kn * Fv * w + kn * L * a * kn * Ep + (K + V + 4 + 2 * c_n) * m_b)
    m_k = b * L * w + a * b * Sp * L * kn
    out["k"] = (m_k, b * Fv * w + b * L * a * kn * Ep + a * b * (Ep * L * kn + Sp * Fv * kn)
                + (K + V + 4 + c_n) * m_k)
    if g is not None:
        m_g = a * L * Sp * (1 + b * kn**2)
        c_g = a * Fv * Sp * (1 + b * kn**2) + a * L * Ep * (1 + b * kn**2) + (K * V + K + 4 + 2 * c_n) * m_g
        if traits is not None and traits.chunk_size and T:
            # chunk forms differentiate through within-chunk cumulative sums G: dg_t = Σ_{i ≥ t in its chunk} ∂L/∂G_i,
            # whose pieces (query read e^{G_i}, decays Γ, the carry e^{G_C − G_i}) cancel — charge their magnitudes
            piece = L * (Sp + Sc) * (1 + b * kn**2) + qn * don * Sc
            rev = torch.zeros_like(piece)
            C = min(T, traits.chunk_size)
            for c0 in range(0, T, C):
                blk = piece[:, c0:c0 + C]
                rev[:, c0:c0 + C] = torch.flip(torch.cumsum(torch.flip(blk, [1]), 1), [1])
            m_g = m_g + rev
            c_g = c_g + (K * V + 2 * C + 4) * rev * kap
        out["g"] = (m_g, c_g)
    if g is not None and traits is not None and traits.chunk_size and T:
        # chunk forms round within-chunk cumulative log-gate sums: each e^{G_i − G_j} they use carries a relative
        # error u·c_log·depth·G (the forward model's log-mass term), G ≤ Σ_t |g_t|, in every gradient
        lg = DELTA_ERROR.c_log * min(T, traits.chunk_size) * g.abs().sum(1)  # [B, H]
        out = {n: (m, c + lg[:, None] * m) for n, (m, c) in out.items()}
    else:
        lg = None
    L0 = (rho[:, 0] * L[:, 0] if T else (dht.double().norm(dim=(-2, -1)) if dht is not None
                                          else torch.zeros(B, H, dtype=torch.float64)))
    F0 = (rho[:, 0] * Fv[:, 0] + ((K + 4) * (1 + b[:, 0] * kn[:, 0] ** 2) + 2 * c_n * b[:, 0] * kn[:, 0] ** 2)
          * L[:, 0] if T else torch.zeros_like(L0))
    expand = {"q": K, "k": K, "v": V}
    res = {}
    for name, (m, c) in out.items():
        if name in expand:
            res[name] = (m[..., None].expand(B, T, H, expand[name]), c[..., None].expand(B, T, H, expand[name]))
        else:
            res[name] = (m, c)
    if lg is not None:
        F0 = F0 + lg * L0
    res["initial_state"] = (L0[..., None, None].expand(B, H, K, V), F0[..., None, None].expand(B, H, K, V))
    return res


def l2norm_grad_magnitudes(grad_fn, inputs: dict, h0, do, dht, traits, c_n: float) -> dict:
    """(magnitude, cond) per gradient in the normalisation mode: ``grad_fn`` (the spec's gradient model) on the
    normalised rows x̂ = x·r, r = 1/√(Σx² + ε), with the rows' error c_n, then dq and dk carried back through
    dx = r(dx̂ − x̂(x̂·dx̂)): ‖dx‖ ≤ r‖dx̂‖ (‖x̂‖ ≤ 1), error r·err(dx̂) + (K + 4 + c_n)·r‖dx̂‖ (the K-long dot, the
    subtraction and scaling, r's own rounding)."""
    cumsum = traits is not None and traits.cumsum != "none"
    q, k = inputs["q"].double(), inputs["k"].double()
    rq = torch.rsqrt((q * q).sum(-1, keepdim=True) + QK_L2NORM_EPS)
    rk = torch.rsqrt((k * k).sum(-1, keepdim=True) + QK_L2NORM_EPS)
    res = grad_fn({**inputs, "q": q * rq, "k": k * rk}, h0, do, dht, cumsum=cumsum, traits=traits, c_n=c_n)
    K = q.shape[-1]
    for name, r in (("q", rq), ("k", rk)):
        m, c = res[name]
        res[name] = (m * r, c * r + (K + 4 + c_n) * m * r)
    return res


DELTA_RULE = _make("delta-rule", "DeltaNet delta rule (matrix state)", "arXiv:2406.06484", gated=False)
GATED_DELTA_RULE = _make("gated-delta-rule", "Gated DeltaNet (gated delta rule)", "arXiv:2412.06464", gated=True)


class SpectralViolation(AssertionError):
    """A transition drawn for an example breaks a spectral fact the spec states: a defect of the spec, its domain or
    the strategies (reported as an rnnconf-internal error, never against the target)."""


_U64 = 2.0**-53


def householder_products(k: torch.Tensor, beta: torch.Tensor, n_h: int) -> torch.Tensor:
    """A_t = H_{t,n_h}⋯H_{t,1}, H_{t,j} = I − β_{t,j} k_{t,j} k_{t,j}ᵀ (j = 1 applied first), as [B, T, H, K, K]
    (float64) from k [B, T·n_h, H, K], beta [B, T·n_h, H]."""
    B, TN, H, K = k.shape
    T = TN // n_h
    Hs = transitions(k, beta).view(B, T, n_h, H, K, K)
    A = torch.eye(K, dtype=torch.float64).expand(B, T, H, K, K).clone()
    for j in range(n_h):
        A = Hs[:, :, j] @ A  # the later factor on the left
    return A


def spectral_check(k: torch.Tensor, beta: torch.Tensor, n_h: int = 1) -> None:
    """Check the spectral facts of every token's transition A_t (the gate α_t ∈ (0, 1] only scales them), stated with
    the keys' actual norms so that they are exact for any input; with ‖k‖ = 1 they are the familiar claims:

    * ‖A_t‖₂ ≤ Π_j ρ_j, ρ_j = max(1, |1 − β_j‖k_j‖²|) (≤ 1 for unit keys, β ∈ [0, 2]) — so every eigenvalue lies in
      the disk |λ| ≤ Π ρ_j (complex for n_h > 1: the product is not symmetric);
    * n_h = 1: A_t is symmetric with eigenvalues 1 (K − 1 times) and 1 − β‖k‖² ∈ [−1, 1] ([0, 1] for β ≤ 1);
    * det A_t = Π_j (1 − β_j‖k_j‖²);  rank(A_t − I) ≤ n_h;  β ≡ 2 on the token with unit keys ⇒ A_tᵀA_t = I.

    Checked in float64 on the exact (already rounded) inputs; slack: the float64 evaluation (c·K·n_h·u₆₄, and
    Bauer–Fike's κ₂(eigenvectors) for the eigenvalues of a non-symmetric product, ‖adj A_t‖₂ for the determinant of a
    transition with raw keys ‖k‖ > 1), plus 2|‖k‖² − 1| per factor for the orthogonality of reflections whose keys
    are unit only up to their rounding.  Raises SpectralViolation."""
    B, TN, H, K = k.shape
    if TN == 0 or K == 0:
        return
    T = TN // n_h
    A = householder_products(k, beta, n_h).reshape(-1, K, K)
    kn2 = (k.double() ** 2).sum(-1).view(B, T, n_h, H).transpose(2, 3).reshape(-1, n_h)
    bb = beta.double().view(B, T, n_h, H).transpose(2, 3).reshape(-1, n_h)
    check_transitions(A, kn2, bb, T, H)


def check_transitions(A: torch.Tensor, kn2: torch.Tensor, bb: torch.Tensor, T: int = 1, H: int = 1) -> None:
    """The checks of :func:`spectral_check` on transitions A [M, K, K] (float64) whose factors have squared key norms
    ``kn2`` and strengths ``bb`` [M, n_h] (M = B·T·H, ordered b, t, h)."""
    K, n_h = A.shape[-1], kn2.shape[-1]
    rho = torch.maximum(torch.ones_like(kn2), (1 - bb * kn2).abs()).prod(-1)
    grow = (1 + bb.abs() * kn2).prod(-1)  # ≥ ‖A‖ bound of every partial product, scales float64 errors
    c = 16 * K * n_h * _U64
    eye = torch.eye(K, dtype=torch.float64)

    def fail(what, mask, got, want):
        i = int(mask.nonzero()[0])
        b, rest = divmod(i, T * H)
        t, h = divmod(rest, H)
        raise SpectralViolation(f"spectral invariant broken at b={b}, t={t}, h={h} (n_h={n_h}, β={bb[i].tolist()}, "
                                f"‖k‖²={kn2[i].tolist()}): {what}: got {float(got[i]):.12g}, "
                                f"allowed {float(want[i]):.12g}")

    nrm = torch.linalg.matrix_norm(A, ord=2)
    lim = rho * (1 + c) + c * grow
    if bool((nrm > lim).any()):
        fail("‖A_t‖₂ ≤ Π max(1, |1 − β‖k‖²|) (≤ 1 for unit keys)", nrm > lim, nrm, lim)
    if n_h == 1:
        ev = torch.linalg.eigvalsh(A)
        lo = torch.minimum(1 - bb[:, 0] * kn2[:, 0], torch.ones_like(rho)) - c * grow
        hi = torch.maximum(1 - bb[:, 0] * kn2[:, 0], torch.ones_like(rho)) + c * grow
        bad = (ev < lo[:, None]).any(-1) | (ev > hi[:, None]).any(-1)
        if bool(bad.any()):
            worst = torch.where(ev < lo[:, None], lo[:, None] - ev, ev - hi[:, None]).amax(-1)
            fail("eigenvalues of I − βkkᵀ in [min(1, 1 − β‖k‖²), max(1, 1 − β‖k‖²)] (⊆ [−1, 1]), excess", bad,
                 worst, torch.zeros_like(worst))
    else:
        ev, vec = torch.linalg.eig(A)
        kappa = torch.linalg.cond(vec)
        kappa = torch.where(torch.isfinite(kappa), kappa, torch.full_like(kappa, math.inf))
        lim_e = rho + kappa * c * grow
        mod = ev.abs().amax(-1)
        if bool((mod > lim_e).any()):
            fail("spectral radius ≤ Π max(1, |1 − β‖k‖²|) (unit disk for unit keys)", mod > lim_e, mod, lim_e)
    det = torch.linalg.det(A)
    want = (1 - bb * kn2).prod(-1)
    tol = c * grow
    # |δ det| ≤ ‖adj A‖₂‖δA‖₂ with ‖adj A‖₂ ≤ Π of the K − 1 largest singular values (≤ 1 for unit keys)
    adj = torch.linalg.svdvals(A)[:, :K - 1].prod(-1) if K > 1 else torch.ones_like(det)
    tol_det = tol * torch.clamp(adj, min=1.0)
    if bool(((det - want).abs() > tol_det).any()):
        fail("det A_t − Π(1 − β_j‖k_j‖²)", (det - want).abs() > tol_det, det - want, tol_det)
    if K > n_h:
        sv = torch.linalg.svdvals(A - eye)[:, n_h]
        if bool((sv > tol).any()):
            fail(f"rank(A_t − I) ≤ n_h: singular value #{n_h + 1} of A_t − I", sv > tol, sv, tol)
    two = (bb == 2).all(-1)
    if bool(two.any()):
        err = (A.transpose(-1, -2) @ A - eye).abs().amax((-2, -1))
        lim_o = 4 * (2 * (kn2 - 1).abs()).sum(-1) * grow + c * grow
        bad = two & (err > lim_o)
        if bool(bad.any()):
            fail("β ≡ 2 ⇒ A_tᵀA_t = I, max |AᵀA − I|", bad, err, lim_o)
