"""``ssd`` — Mamba-2's state-space dual layer (Dao & Gu, "Transformers are SSMs: Generalized Models and Efficient
Algorithms Through Structured State Space Duality", arXiv 2405.21060), in mamba-ssm's convention
(``mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined`` 2.3.2, called as the ``Mamba2`` layer calls it:
``dt_softplus=True`` with ``dt_bias`` and ``D``, ``z=None``, ``dt_limit=(0, inf)``):

    Δ_t = softplus(dt_t + dt_bias)        (torch's and mamba's softplus: z for z > 20, log1p(exp(z)) otherwise)
    H_t = exp(Δ_t A) H_{t−1} + Δ_t x_t B_tᵀ,      y_t = H_t C_t + D x_t,      H_0 = initial_state (zeros when None)

per batch row and head h ∈ [0, H = G·R), with the group g = h // R supplying B and C (mamba's ``(g r)`` head
order).  Shapes: x, y [B, T, H, P]; dt [B, T, H]; A, D, dt_bias [H]; B, C [B, T, G, N]; states [B, H, P, N].
SIGNATURE ``fn(x, dt, A, B, C, D, dt_bias, initial_state=None, output_final_state=False, cu_seqlens=None)
-> (y, final_state)``: mamba's positional order, its ``chunk_size`` bound by the target (a kernel parameter, not part
of the model: every chunk size computes this function — the ``ssd-chunk-size`` invariant), ``initial_states`` /
``return_final_states`` under the suite's names (its adapter renames them).  Varlen: B = 1, ``cu_seqlens`` packs N
sequences, initial_state [N, H, P, N].

FORMS.  sequential (the recurrence); quadratic (the dual form Y = (L ∘ C Bᵀ) X̃ with L = exp(segsum(ΔA)), segsum a
cumulative sum of *masked* terms so that exp never meets cumsum_t − cumsum_s of far-apart steps, whose float value
is inf − inf once the log-decays are large); chunkwise (the four steps: diagonal blocks by the quadratic form, chunk
states, the scan over chunk boundaries, the off-diagonal read), any chunk size, T % chunk ≠ 0.

ERROR MODEL (running error analysis, every tolerance in units of u_acc; c_step = 0: the oracle returns the whole
running error as ``cond``).  With z = dt + dt_bias (one rounding) the computed Δ has relative error
c_Δ·u, c_Δ = 3 + |z|σ(z)/softplus(z) (the sum's rounding amplified by softplus's relative condition number, exp and
log1p), c_Δ = 1 past the threshold.  The decay a = exp(Δ·A) has relative error (1 + |ΔA|(c_Δ + 1))·u (the exponent's
absolute error |ΔA|(c_Δ + 1)u, exp's rounding), the input b = Δ x B (c_Δ + 2)u.  Elementwise on the magnitude shadow
M_t = a_t M_{t−1} + |b_t| (|M_0| = |H_0|), the sequential update's error is

    E_t = a_t E_{t−1} + (2 + |Δ_t A|(c_Δ + 1)) a_t M_{t−1} + (c_Δ + 3)|b_t|

(a·H, the add; the exponent term stays bounded since |ΔA|·e^{ΔA} ≤ 1/e), and the read y_t = Σ_n C_n H_{t,n} + D x_t
adds (N + 2)·m_y with m_y = Σ_n |C_n| M_{t,n} + |D x_t|: cond(y) = Σ_n |C_n| E_{t,n} + (N + 2) m_y, mag(y) = m_y
(u_out·c_out·m_y for the output's own rounding).  Chunk forms (``Traits.chunk_size`` C, C' = min(C, T)) add the
within-chunk sums (an N-long dot and a C'-long sum per diagonal block, the C'-long chunk-state sum, two roundings per
chunk passed): (2C' + 10 + 5(t + 1)/C')·m_y on y_t and (C' + 5 + 5(T + 1)/C')·M_T on the final state, and the
cumulative sums of ΔA they difference: c_log·depth·G_t with G_t = Σ_{s≤t} |Δ_s A| (c_log = 2: both sums enter).
A state carried between calls in the input dtype is rounded once: its error u_out·|H_τ| propagates by decays ≤ 1 and
stays below M_t (``carry`` = the magnitude).

UNDERFLOW (floor "roundings", weighted).  A rounding whose result is subnormal (or flushed) errs by up to
u·tiny absolutely, and every factor that multiplies the result afterwards scales that error: an SSD product formed
in any order (C·B before L·X, Δ·x before B) may underflow at any partial product.  With q(v) = max(1, |v|), every
such cofactor is at most the product of q over all of a summand's factors, so the floor counts, per (p, n),
W_t = W_{t−1} + 8·(q(Δ_t)q(x_t)q(B_t) + q(M_{t−1})) (8 roundings a step, the old state's decay product weighted by
its magnitude), and y_t = Σ_n q(C_n)(W_{t,n} + 2) + (N + 4)(q(D)q(x_t) + 1); each unit costs u_acc·tiny(acc) +
tiny(float32).  A state, an input term Δ·x·B, a read C·H of an undecayed earlier state (mamba's Y_off forms C·H
before the decay), a state's adjoint or a decay's adjoint Σ λ·|H| (summed over steps, as a cumulative log-decay's
is) whose magnitude leaves the working precision's range is inf there:
the values read after it (a chunk form's whole call) and every gradient of that batch row and head are not judged.
A gradient element whose cofactor shadow (below) reaches that range is not judged either: every partial product
or partial sum of its summands, in any order, is at most that shadow, and nothing less rules out an overflow.  The
gradients' count is the same shadow as their magnitude with every factor replaced by q(·) (and
the decays by 1) times the rounding count of their cond.  In float32 and float64 this is negligible; in float16 it
is what lets a pure-half evaluation (mamba-ssm's ssd_minimal) underflow 6e-7 to 0.

GRADIENTS (:func:`grad_magnitudes`): the magnitude of every summand of each gradient is the gradient of the same
computation on absolute values (|x|, |B|, |C|, |D|, |H_0|, |do|, decays a with ∂a/∂Δ = |A|a), taken by autograd in
float64; the factors' relative errors (c_Δ, the exponent's) are carried by differencing that shadow with one whose
factors are inflated by them (first order), and every gradient pays its reduction length n (a parameter's sum over
B·T·P·N) plus 2(T + 1) + N + P + 10 roundings of the adjoint recurrence and its products.  Chunk forms differentiate
through ∂L/∂cumsum, whose pieces (paths ending at a step, paths starting there) cancel: dt and A pay
2·Σ_t(Σ_p |do_t| m_y + Σ |b_t|Λ_t) times their chain factors (|A|σ(z), Δ), and the within-chunk terms as forward.
"""
from __future__ import annotations

import torch

from .base import Arg, Dim, Invariant, Output, Spec, pow2_boundaries, register
from .domains import Domain, real
from .errors import ErrorModel

UNDERFLOW_PER_STEP = 8.0  # roundings per step whose result may underflow (z, softplus, ΔA, exp, Δx, ·B, a·H, +)
SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus's and mamba-ssm's: z above it is returned as is

DIMS = {
    "B": Dim("B", 1, 8, edges=(1,), doc="batch", boundaries=pow2_boundaries(4, 8)),
    "T": Dim("T", 1, 16384, edges=(1, 2, 3, 16, 17, 31, 33), doc="sequence length",
             boundaries=pow2_boundaries(16, 4097)),
    "G": Dim("G", 1, 8, edges=(1, 2), doc="groups of B/C (mamba's ngroups)", boundaries=(1, 2, 3, 4)),
    "R": Dim("R", 1, 16, edges=(1, 2), doc="heads per group (H = G·R)", boundaries=(1, 2, 3, 4)),
    "P": Dim("P", 1, 128, edges=(1, 16), doc="head dim", boundaries=pow2_boundaries(16, 128)),
    "N": Dim("N", 1, 256, edges=(1, 16), doc="state dim", boundaries=pow2_boundaries(16, 256)),
}
H = "G*R"

# dt before softplus: −1e4 is a padding step (softplus underflows to exactly 0 in every dtype: the step is the
# identity), 20/21 straddle softplus's threshold, 30 with A = −1e3 is a log-decay of −3e4 per step; A reaches −1e36
# for the ssd-segsum-stable invariant (ΔA = −3e37: a float32 cumulative sum overflows, cumsum_t − cumsum_s is inf − inf)
DT = Domain("dt (before softplus)", lo=-1e4, hi=30.0, center=-1.0, scale=2.0,
            edges=(-1e4, 0.0, 20.0, 21.0, 30.0), doc="raw dt; Δ = softplus(dt + dt_bias) ≥ 0")
A_DOM = Domain("A = −exp(A_log) ≤ 0", lo=-1e36, hi=0.0, law="loguniform", edges=(0.0, -1.0, -16.0, -1e3),
               doc="per-head continuous-time decay rate")
BIAS = Domain("dt_bias", lo=-20.0, hi=20.0, center=-2.0, scale=2.0, edges=(0.0,),
              doc="added to dt before softplus (mamba initialises it at softplus⁻¹ of dt ∈ [1e-3, 0.1])")

SSD_ERROR = ErrorModel(c_step=0.0, c_log=2.0, c_out=1.0, floor="roundings",
                       doc=__doc__.split("ERROR MODEL")[1].split("GRADIENTS")[0].strip())


def softplus64(z: torch.Tensor) -> torch.Tensor:
    """The spec's softplus in float64 (threshold included)."""
    return torch.where(z > SOFTPLUS_THRESHOLD, z, torch.log1p(torch.exp(z.clamp(max=SOFTPLUS_THRESHOLD))))


def delta_condition(z: torch.Tensor) -> torch.Tensor:
    """c_Δ per element (module docstring): the relative error of the computed Δ = softplus(z), z = dt + dt_bias, in
    units of u."""
    z = z.double()
    sp = softplus64(z)
    amp = torch.where(sp > 0, z.abs() * torch.sigmoid(z) / sp.clamp(min=1e-300), z.abs())
    return torch.where(z > SOFTPLUS_THRESHOLD, torch.ones_like(z), 3 + amp)


def heads_of_groups(X: torch.Tensor, R: int) -> torch.Tensor:
    """B or C [B, T, G, N] expanded to one row per head [B, T, G·R, N] (head h reads group h // R)."""
    return X.repeat_interleave(R, dim=2)


def _inputs64(inputs: dict):
    x, dt, A, Bm, Cm, D, bias = (inputs[k].double() for k in ("x", "dt", "A", "B", "C", "D", "dt_bias"))
    R = x.shape[2] // Bm.shape[2]
    return x, dt, A, heads_of_groups(Bm, R), heads_of_groups(Cm, R), D, bias, R


def _shadow(x, dt, A, Bh, Ch, D, bias, h0, eps=None, cofactor=False):
    """y and H_T of the computation on absolute values (x, Bh, Ch, D, h0 given as |·|: no abs() here, whose
    derivative at 0 would be 0; float64, differentiable in every leaf), the decays
    a = exp(−Δ|A|) entering with ∂a/∂Δ = |A|a ≥ 0 and ∂a/∂|A| = Δa ≥ 0.  ``eps`` (ε_a, ε_b) [B, T, H] inflates each
    decay by (1 + ε_a) and each input term by (1 + ε_b) (first-order error propagation)."""
    z = dt + bias
    dl = softplus64(z)
    Aa = A
    a_val = torch.exp(-(dl * Aa).detach())
    # straight-through: the value of exp(−Δ|A|), derivatives +|A|a and +Δa
    a = a_val + a_val * (Aa.detach() * (dl - dl.detach()) + dl.detach() * (Aa - Aa.detach()))
    if cofactor:  # the underflow floor's weights: decays as 1, Δ and the decay derivatives as q(·) = max(1, |·|)
        ones = torch.ones_like(a_val)
        a = ones + (a_val * Aa.detach()).clamp(min=1.0) * (dl - dl.detach()) \
            + (a_val * dl.detach()).clamp(min=1.0) * (Aa - Aa.detach())
        dl = dl.clamp(min=1.0)
    if eps is not None:
        a = a * (1 + eps[0])
    Bsz, T, Hn, P = x.shape
    N = Bh.shape[-1]
    S = h0 if h0 is not None else x.new_zeros(Bsz, Hn, P, N)
    ys = []
    for t in range(T):
        b = dl[:, t, :, None, None] * x[:, t][..., None] * Bh[:, t][:, :, None, :]
        if eps is not None:
            b = b * (1 + eps[1][:, t, :, None, None])
        S = a[:, t, :, None, None] * S + b
        ys.append(torch.einsum("bhpn,bhn->bhp", S, Ch[:, t]) + D[:, None] * x[:, t])
    y = torch.stack(ys, 1) if T else x.new_zeros(Bsz, 0, Hn, P)
    return y, S


def grad_magnitudes(inputs: dict, h0, do, dht, cumsum: bool = False, traits=None, dtype=None) -> dict:
    """(magnitude, cond) per gradient (module docstring, GRADIENTS), keyed by input name and ``initial_state``."""
    x, dt, A, Bh, Ch, D, bias, R = _inputs64(inputs)
    Bsz, T, Hn, P = x.shape
    N = inputs["B"].shape[-1]
    names = ("x", "dt", "A", "B", "C", "D", "dt_bias")
    do_a = do.double().abs()
    dht_a = dht.double().abs() if dht is not None else None
    z = (dt + bias).detach()
    cD = delta_condition(z)
    dl = softplus64(z)
    eps_a = 1 + (dl * A.abs()) * (cD + 1)
    eps_b = cD + 2

    def grads(eps, cofactor=False):
        q = (lambda v: v.clamp(min=1.0)) if cofactor else (lambda v: v)  # noqa: E731
        leaf = {"x": q(x.abs()), "dt": dt, "A": A.abs(), "B": q(inputs["B"].double().abs()),
                "C": q(inputs["C"].double().abs()), "D": q(D.abs()), "dt_bias": bias}
        leaf = {k: v.detach().clone().requires_grad_(True) for k, v in leaf.items()}
        s0 = q(h0.double().abs()).detach().clone().requires_grad_(True) if h0 is not None else None
        y, ST = _shadow(leaf["x"], leaf["dt"], leaf["A"], heads_of_groups(leaf["B"], R),
                        heads_of_groups(leaf["C"], R), leaf["D"], leaf["dt_bias"], s0, eps, cofactor)
        L = (q(do_a) * y).sum() + ((q(dht_a) * ST).sum() if dht_a is not None else 0.0)
        want = [leaf[k] for k in names] + ([s0] if s0 is not None else [])
        gs = torch.autograd.grad(L, want, allow_unused=True) if L.requires_grad else [None] * len(want)
        out = {k: (g if g is not None else torch.zeros_like(leaf[k])).abs() for k, g in zip(names, gs)}
        if s0 is not None:
            out["initial_state"] = gs[-1].abs() if gs[-1] is not None else torch.zeros_like(s0)
        return out, y.detach(), ST.detach()

    base, y_abs, _ = grads(None)
    h = 2.0**-30  # first-order difference of the inflated shadow: (g(h·ε) − g(0))/h → Σ_paths |path|·Σ ε
    infl, _, _ = grads((h * eps_a, h * eps_b))
    cof, _, _ = grads(None, cofactor=True)
    red = {"x": N, "dt": P * N, "A": Bsz * T * P * N, "B": R * P, "C": R * P, "D": Bsz * T * P,
           "dt_bias": Bsz * T * P * N, "initial_state": 0}
    C_ = min(traits.chunk_size, T) if (traits is not None and traits.chunk_size and T) else 0
    out = {}
    extra = {}
    if cumsum and T:
        # paths ending at t (Σ_p |do_t| m_y) and starting at t (Σ |b_t| Λ_t): the cancelling pieces of ∂L/∂cumsum
        ends = (do_a * y_abs).sum((1, 3))  # [B, H]
        starts = (base["x"] * x.abs()).sum((1, 3))  # Σ_{t,p} |x|·∂L/∂|x| = Σ |b_t|Λ_t (+ the D paths)
        tot = 2 * (ends + starts)  # [B, H]
        extra["dt"] = A.abs() * torch.sigmoid(z) * tot[:, None, :]
        extra["dt_bias"] = (A.abs() * torch.sigmoid(z) * tot[:, None, :]).sum((0, 1))
        extra["A"] = (dl * tot[:, None, :]).sum((0, 1))
    G_T = (dl * A.abs()).sum(1) if T else torch.zeros(Bsz, Hn, dtype=torch.float64)  # [B, H]
    over = _overflow_bh(x, dl, A, Bh, Ch, h0, do_a, dht_a, dtype, traits)  # [B, H] or None
    fmax = float("inf")
    if dtype is not None and traits is not None:
        from .nonlinear import working_precision

        fmax = working_precision(dtype, traits)[1]
    for k, m in base.items():
        m = m + extra.get(k, 0.0)
        first = (infl[k] - base[k]).clamp(min=0) / h
        c = first + (red[k] + 2 * (T + 1) + N + P + 10) * m
        if C_:
            lg = SSD_ERROR.c_log * C_ * G_T.amax()  # the cumulative sums' rounding, worst head
            c = c + (2 * C_ + 10 + 5 * (T + 1) / C_ + lg) * m
        n_round = red[k] + 2 * (T + 1) + N + P + 10 + (2 * C_ + 10 if C_ else 0)
        if over is not None:
            c = torch.where(_spread(over, k, c.shape, R), float("inf"), c)
        if fmax < float("inf"):  # some partial product of some evaluation order may overflow: not judged
            c = torch.where(cof[k] + extra.get(k, 0.0) >= fmax, float("inf"), c)
        out[k] = (m, c, n_round * (cof[k] + extra.get(k, 0.0)) + n_round)
    return out


def _overflow_bh(x, dl, A, Bh, Ch, h0, do_a, dht_a, dtype, traits):
    """[B, H]: heads of a batch row where a stored state, an input term Δ·x·B, a read C·H of an undecayed earlier
    state, or an adjoint of the state leaves the working precision's range at some step (the evaluation stores inf
    there, and a backward multiplying it by a zero adjoint makes NaN: every gradient reading that head is not
    judged); ``None`` without a precision or where nothing leaves it."""
    if dtype is None or traits is None or not x.shape[1]:
        return None
    from .nonlinear import working_precision

    fmax = working_precision(dtype, traits)[1]
    Bsz, T, Hn, P = x.shape
    M = h0.double().abs() if h0 is not None else x.new_zeros(Bsz, Hn, P, Bh.shape[-1])
    a = torch.exp(-dl * A.abs())
    Cabs, Babs = Ch.abs(), Bh.abs()
    run = M.amax((-2, -1))
    big = torch.zeros(Bsz, Hn, dtype=torch.bool)
    Ms = []
    for t in range(T):
        Ms.append(M)
        b = dl[:, t, :, None, None] * x[:, t].abs()[..., None] * Babs[:, t][:, :, None, :]
        M = a[:, t, :, None, None] * M + b
        run = torch.maximum(run, M.amax((-2, -1)))
        big = big | (torch.maximum(M, b).amax((-2, -1)) >= fmax) | (Cabs[:, t].sum(-1) * run >= fmax)
    # |adjoint of H_t| backward in t, and the decay's adjoint Σ_{p,n} λ_t·|H_{t−1}| (undecayed), summed from the
    # end as a cumulative log-decay's adjoint is
    lam = dht_a if dht_a is not None else torch.zeros_like(M)
    dec = torch.zeros(Bsz, Hn, dtype=torch.float64)
    for t in range(T - 1, -1, -1):
        lam = lam + do_a[:, t][..., None] * Cabs[:, t][:, :, None, :]
        dec = dec + (lam * Ms[t]).sum((-2, -1))
        big = big | (lam.amax((-2, -1)) >= fmax) | (dec >= fmax)
        lam = a[:, t, :, None, None] * lam
    return big if bool(big.any()) else None


def _spread(over, name, shape, R):
    """The [B, H] mask ``over`` on the gradient of ``name`` (shape ``shape``)."""
    if name in ("x",):
        return over[:, None, :, None].expand(shape)
    if name == "dt":
        return over[:, None, :].expand(shape)
    if name in ("A", "D", "dt_bias"):
        return over.any(0).expand(shape)
    if name in ("B", "C"):
        g = over.unflatten(1, (-1, R)).any(2)  # [B, G]
        return g[:, None, :, None].expand(shape)
    return over[:, :, None, None].expand(shape)  # initial_state


SPEC = register(Spec(
    id="ssd",
    title="Mamba-2 SSD (state-space dual) layer op, mamba_chunk_scan_combined's convention",
    paper="arXiv:2405.21060",
    version="1",
    math="Δ_t = softplus(dt_t + dt_bias); H_t = exp(Δ_t A) H_{t−1} + Δ_t x_t B_tᵀ; y_t = H_t C_t + D x_t",
    signature="fn(x, dt, A, B, C, D, dt_bias, initial_state=None, output_final_state=False, cu_seqlens=None) "
              "-> (y, final_state)",
    dims=DIMS,
    args=(
        Arg("x", ("B", "T", H, "P"), real(1.0, edges=(0.0, 1e2, -1e2)), doc="input x_t per head"),
        Arg("dt", ("B", "T", H), DT, doc="raw step size (softplus(dt + dt_bias) is Δ)"),
        Arg("A", (H,), A_DOM, kind="param", doc="A ≤ 0 per head (scalar times identity)"),
        Arg("B", ("B", "T", "G", "N"), real(1.0), doc="input projection B_t per group"),
        Arg("C", ("B", "T", "G", "N"), real(1.0), doc="output projection C_t per group"),
        Arg("D", (H,), real(1.0, edges=(0.0, 1.0)), kind="param", doc="skip D per head"),
        Arg("dt_bias", (H,), BIAS, kind="param", doc="step-size bias"),
        Arg("initial_state", ("B", H, "P", "N"), real(1.0), kind="state", optional=True, doc="H_0"),
    ),
    outputs=(
        Output("y", ("B", "T", H, "P"), "y_t = H_t C_t + D x_t"),
        Output("final_state", ("B", H, "P", "N"), "H_T (when output_final_state)", state=True),
    ),
    forms=("sequential", "quadratic", "chunk"),
    invariants=(
        Invariant("ssd-chunk-size", "every chunk size computes the same function: a chunked target called with "
                  "chunk sizes 1, 2, primes, T − 1, T, T + 1 and powers of two (T % chunk ≠ 0 included) matches the "
                  "oracle within its bound at that chunk size"),
        Invariant("ssd-padding-identity", "a step with Δ = softplus(dt + dt_bias) = 0 (dt = −1e4) is the identity "
                  "on the state: appending such steps leaves the final state unchanged, and their outputs read "
                  "y_t = H C_t + D x_t from the unchanged state (against the oracle of the unpadded call)"),
        Invariant("ssd-segsum-stable", "log-decays of −3e37 per step on some heads (dt = 30, A = −1e36: a float32 "
                  "cumulative sum reaches −inf within 12 steps, so cumsum_t − cumsum_s is inf − inf): outputs stay "
                  "finite and within the bound"),
    ),
    error_model=SSD_ERROR,
    extra={"family": "ssm", "reference_form": "sequential", "independent_axes": ("B",),
           "grad_magnitudes": grad_magnitudes},
    notes="z (the gate), dt_limit and dt_softplus=False are not part of this spec; head independence is not "
          "judged (heads are G·R, no single axis)",
))
