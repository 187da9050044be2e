"""Hypothesis tests of the hgrn-layer invariants (rnnconf.spec.hgrn_layer) against the mpmath oracle and the torch
forms: lower bounds, gate ranges and the two gate formulas, the modulus bound, the θ = 0 reduction to ``hgrn`` and
conjugation symmetry.  Every tolerance is derived from rnnconf.spec.errors (unit roundoff, the error model) — the
derivation sits next to each check."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnconf.impls import hgrn_layer as impl
from rnnconf.oracles.hgrn_layer import gate_oracle, hgrn_layer_oracle, lower_bounds_oracle
from rnnconf.properties.strategies import draw_tensor, round_to
from rnnconf.registry import builtin_forms, get_form, get_spec
from rnnconf.spec import hgrn_layer as S
from rnnconf.spec.domains import Domain
from rnnconf.spec.errors import unit_roundoff

SPEC = get_spec("hgrn-layer")
FORMS = [t.name for t in builtin_forms("hgrn-layer")]
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
U64 = unit_roundoff(torch.float64)


def _settings(n):
    return settings(max_examples=n, derandomize=True, deadline=None)


def _compute(dtype):
    """The precision the gate math and forms run in: float32 for half inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _tiny(dtype):
    return float(torch.finfo(_compute(dtype)).tiny)


def _draw_case(data, dtype, B_hi=2, T_hi=40, D_hi=5, state=None):
    """Sizes and every input from the spec's own domains (edges planted), rounded to ``dtype`` (float64 values)."""
    dims = {"B": data.draw(st.integers(1, B_hi), label="B"),
            "T": data.draw(st.one_of(st.sampled_from([1, 2, 17]), st.integers(1, T_hi)), label="T"),
            "D": data.draw(st.integers(1, D_hi), label="D")}
    x = {}
    for a in SPEC.inputs:
        x[a.name] = draw_tensor(data, a.name, a.domain, tuple(dims[s] for s in a.shape), dtype)
    h0 = None
    if state if state is not None else data.draw(st.booleans(), label="initial_state"):
        dom = SPEC.state_arg.domain
        shape = (dims["B"], dims["D"])
        h0 = torch.complex(draw_tensor(data, "h0.re", dom, shape, dtype), draw_tensor(data, "h0.im", dom, shape, dtype))
    return dims, x, h0


def _run(form, x, h0, dtype):
    args = [x[k].to(dtype) for k in ("f", "c_re", "c_im", "gamma", "theta")]
    h = h0.to(S.complex_dtype(_compute(dtype))) if h0 is not None else None
    o, hT = get_form(f"hgrn-layer/{form}").fn(*args, initial_state=h, output_final_state=True)
    return o, hT


# ---- lower bounds ---------------------------------------------------------------------------------------------
def _lb_bound(Gamma, res, u, tiny):
    """|γ̂^l − γ^l| ≤ u·[Σ_{j≤l} P_j(|Γ_j − M| + 1.4L + 5) + (l + 2)γ^l] + L·tiny.

    libm calls are counted at 1 ulp = 2u (vectorised implementations).  Softmax: Γ_j − M is one rounding (absolute
    u|Γ_j − M| in the exponent, so relative in P_j), exp 2u; the sum S of L terms ≤ (L − 1)u·S plus its terms' own
    errors Σ e_k u(|Γ_k − M| + 2) ≤ u(2S + L/e) (e_k|Γ_k − M| ≤ 1/e, S ≥ 1) ≤ (1.4L + 1)u·S; the division (reciprocal
    and multiply) 2u ⇒ |δP_j| ≤ u(|Γ_j − M| + 1.4L + 5)P_j.  The cumulative sum of l non-negative terms adds
    (l − 1)u·γ^l; the cap at fl(1 − P̂_0), when active, errs by ≤ u(1 − P_0) + P_0|δP_0|, and is active only where
    γ^l ≈ 1 − P_0 (covered by the j = 0 term and one more u·γ^l).  Underflowed weights: tiny each."""
    L = Gamma.shape[0]
    P, gam = res.values["softmax"], res.values["gamma"]
    M = Gamma.max(0, keepdim=True).values
    per = P * ((Gamma - M).abs() + 1.4 * L + 5)
    ell = torch.arange(L, dtype=torch.float64)[:, None]
    return u * (torch.cumsum(per, 0) + (ell + 2) * gam) + L * tiny


@_settings(60)
@given(data=st.data())
def test_lower_bounds(data):
    """γ^0 = 0 exactly, non-decreasing exactly, 0 ≤ γ ≤ 1, γ^{L−1} < 1 whenever P_0 > u (the cap 1 − P̂_0 then
    rounds below 1), and within the derived bound of the oracle — including Γ with spreads of ±80."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    L = data.draw(st.integers(1, 24), label="L")
    D = data.draw(st.integers(1, 6), label="D")
    spread = data.draw(st.sampled_from([0.1, 1.0, 10.0, 80.0]), label="spread")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    g = torch.Generator().manual_seed(seed)
    Gamma = torch.randn(L, D, generator=g, dtype=torch.float64) * spread
    if data.draw(st.booleans(), label="plant ±80"):
        Gamma[0] = -80.0
        Gamma[-1] = 80.0
    Gamma = round_to(Gamma, dtype)
    res = lower_bounds_oracle(Gamma)
    u, tiny = unit_roundoff(_compute(dtype)), _tiny(dtype)
    for name, gam in (("spec", S.lower_bounds(Gamma.to(dtype))), ("impl", impl.lower_bounds(Gamma.to(dtype)))):
        gam = gam.double()
        assert (gam[0] == 0).all(), name
        assert (gam[1:] >= gam[:-1]).all(), name
        assert ((gam >= 0) & (gam <= 1)).all(), name
        strict = res.values["top_gap"] > u
        assert (gam[-1][strict] < 1).all(), (name, res.values["top_gap"])
        err = (gam - res.values["gamma"]).abs()
        bnd = _lb_bound(Gamma, res, u, tiny)
        assert (err <= bnd).all(), (name, float((err / bnd).max()))
    fla = impl.lower_bounds(Gamma.to(dtype), variant="fla").double()
    assert (fla[0] == 0).all() and (fla[1:] >= fla[:-1]).all()  # fla's form keeps these two exactly …


def test_fla_lower_bounds_exceed_one():
    """… but not γ ≤ 1: with P_0 below a few ulps, cumsum(P) rounds above 1 and so does γ^{L−1} (float32) — then
    log1p(−γ) is NaN and λ > 1.  The spec's form caps at 1 − P_0."""
    g = torch.Generator().manual_seed(0)
    Gamma = torch.randn(24, 64, generator=g) * 3
    Gamma[0] = -80.0
    fla = impl.lower_bounds(Gamma, variant="fla")
    assert (fla > 1).any()
    assert (S.lower_bounds(Gamma) <= 1).all()
    assert torch.isnan(torch.log1p(-fla)).any() and not torch.isnan(torch.log1p(-S.lower_bounds(Gamma))).any()


# ---- gates ----------------------------------------------------------------------------------------------------
@_settings(60)
@given(data=st.data())
def test_gate_ranges_and_forms_agree(data):
    """γ ≤ λ̂ ≤ 1 and 0 ≤ 1 − λ̂ ≤ fl(1 − γ) exactly; each gate within its derived bound of the oracle; and
    gate ≡ exp(log_gate).

    Bounds (u of the compute dtype; libm calls — exp, log, log1p — at 1 ulp = 2u): σ = 1/(1 + e^{−f}) is exp, add,
    divide (4u); (1 − γ) and the product 2u; the add of γ 1u ⇒ λ̂: 7u·λ; the complement (1 − γ)σ(−f): 6u.
    log_gate: logσ(f) = min(f,0) − log1p(e^{−|f|}) errs by u(|logσ| + 3), log1p(−γ) by 2u|log(1−γ)|, their sum y by
    u(3|y| + 3); log γ by 2u|log γ|; logaddexp weights its inputs' errors by p_x, p_y with p|x| ≤ |log λ| + 1/e and
    adds u(|log λ| + 4) ⇒ |δ log λ| ≤ u(6|log λ| + 9); exp adds 2u ⇒ |λ̂ − exp(log_gate)| ≤ u(18 + 6|log λ|)·λ.
    Values below the smallest normal: tiny each."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    n = data.draw(st.integers(1, 64), label="n")
    f = draw_tensor(data, "f", SPEC.arg("f").domain, (n, 1), dtype)
    gamma = draw_tensor(data, "gamma", SPEC.arg("gamma").domain, (1,), dtype)
    cd = _compute(dtype)
    u, tiny = unit_roundoff(cd), _tiny(dtype)
    lam = S.gate(f.to(dtype), gamma.to(dtype)).double()
    om = S.gate_complement(f.to(dtype), gamma.to(dtype)).double()
    lg = S.log_gate(f.to(dtype), gamma.to(dtype)).double()
    assert lam.dtype == om.dtype == lg.dtype
    assert ((lam >= gamma) & (lam <= 1)).all()
    assert ((om >= 0) & (om <= (1 - gamma.to(cd)).double())).all()
    ex = gate_oracle(f, gamma)
    assert ((lam - ex["lambda"]).abs() <= 7 * u * ex["lambda"] + tiny).all()
    assert ((om - ex["complement"]).abs() <= 6 * u * ex["complement"] + tiny).all()
    L = ex["log_lambda"].abs()
    assert ((lg - ex["log_lambda"]).abs() <= u * (6 * L + 9)).all()
    via_log = torch.exp(lg.to(cd)).double()
    assert ((lam - via_log).abs() <= u * (18 + 6 * L) * ex["lambda"] + 2 * tiny).all()


def test_lambda_rounds_to_one_in_float32_but_complement_does_not():
    """The stated float32 behaviour: at γ = 0, f = 30, λ̂ = 1 exactly while 1 − λ = σ(−30) ≈ 9.4e-14 survives."""
    f, g = torch.tensor([30.0]), torch.tensor([0.0])
    assert S.gate(f, g).item() == 1.0
    om = S.gate_complement(f, g).item()
    assert om > 0 and abs(om - math.exp(-30) / (1 + math.exp(-30))) <= 6 * unit_roundoff(torch.float32) * om


# ---- the recurrence -------------------------------------------------------------------------------------------
@_settings(40)
@given(data=st.data())
def test_modulus_bound(data):
    """|h_t| ≤ max(|h_0|, max_{s≤t}|c_s|) =: M_t, since |λe^{iθ}| + (1 − λ) = 1.  Oracle: M_t(1 + 2u64) (the
    rounding of the two moduli in float64).  Forms: M_t(1 + 2u64) + the error model's bound for this form."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    form = data.draw(st.sampled_from(FORMS), label="form")
    dims, x, h0 = _draw_case(data, dtype)
    res = hgrn_layer_oracle(**x, initial_state=h0)
    cmax = torch.cummax(torch.complex(x["c_re"], x["c_im"]).abs(), 1).values
    if h0 is not None:
        cmax = torch.maximum(cmax, h0.abs()[:, None])
    M = cmax * (1 + 2 * U64)
    assert (res.values["o"].abs() <= M).all()
    o, hT = _run(form, x, h0, dtype)
    assert o.dtype == hT.dtype == S.complex_dtype(_compute(dtype))
    target = get_form(f"hgrn-layer/{form}")
    em = SPEC.error_model
    bo = em.bound(res.steps["o"], res.mag["o"], res.logmass["o"], dtype, target.traits)
    assert (o.to(torch.complex128).abs() <= M + bo).all()
    bf = em.bound(res.steps["final_state"], res.mag["final_state"], res.logmass["final_state"], dtype, target.traits)
    assert (hT.to(torch.complex128).abs() <= M[:, -1] + bf).all()


@_settings(30)
@given(data=st.data())
def test_zero_angle_reduces_to_hgrn(data):
    """θ = 0, c_im = 0, real h_0: every form's Im o is exactly 0, and Re o agrees with the ``hgrn`` sequential form
    run on g = log_gate(f, γ), x = gate_complement(f, γ)·c.

    Tolerance: this form's bound + hgrn's bound (both from their error models on the layer oracle's m_t, G_t), plus
    the effect of the rounded hgrn inputs: x̂ = x(1 + 7u) moves h_t by ≤ 7u·m_t; ĝ = g + δ with |δ| ≤ u(6|g| + 9)
    (see test_gate_ranges_and_forms_agree) scales each decay by e^{δ}, moving h_t by ≤ Σ|δ_s|·m_t
    ≤ u(6G_t + 9(t+1))·m_t."""
    dtype = data.draw(st.sampled_from((torch.float64, torch.float32)), label="dtype")
    form = data.draw(st.sampled_from(FORMS), label="form")
    dims, x, _ = _draw_case(data, dtype, state=False)
    x["c_im"] = torch.zeros_like(x["c_im"])
    x["theta"] = torch.zeros_like(x["theta"])
    h0 = None
    if data.draw(st.booleans(), label="initial_state"):
        h0 = torch.complex(draw_tensor(data, "h0", SPEC.state_arg.domain, (dims["B"], dims["D"]), dtype),
                           torch.zeros(dims["B"], dims["D"], dtype=torch.float64))
    o, hT = _run(form, x, h0, dtype)
    assert (o.imag == 0).all() and (hT.imag == 0).all()
    f, gamma = x["f"].to(dtype), x["gamma"].to(dtype)
    g = S.log_gate(f, gamma)
    xin = S.gate_complement(f, gamma) * x["c_re"].to(dtype)
    ho, hhT = get_form("hgrn/sequential").fn(xin, g, initial_state=h0.real.to(dtype) if h0 is not None else None,
                                           output_final_state=True)
    res = hgrn_layer_oracle(**x, initial_state=h0)
    u = unit_roundoff(dtype)
    hg = get_spec("hgrn").error_model
    for name, mine, theirs in (("o", o, ho), ("final_state", hT, hhT)):
        st_, m, G = res.steps[name], res.mag[name], res.logmass[name]
        tol = (SPEC.error_model.bound(st_, m, G, dtype, get_form(f"hgrn-layer/{form}").traits)
               + hg.bound(st_, m, G, dtype, get_form("hgrn/sequential").traits)
               + u * (7 + 6 * G + 9 * st_) * m)
        assert ((mine.real.double() - theirs.double()).abs() <= tol).all(), name


@_settings(30)
@given(data=st.data())
def test_conjugation_symmetry_is_exact(data):
    """(θ, c, h_0) → (−θ, c̄, h̄_0) gives ō bitwise: negation is exact and round-to-nearest is symmetric under it."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    form = data.draw(st.sampled_from(FORMS), label="form")
    dims, x, h0 = _draw_case(data, dtype)
    o, hT = _run(form, x, h0, dtype)
    xc = dict(x, c_im=-x["c_im"], theta=-x["theta"])
    oc, hTc = _run(form, xc, h0.conj() if h0 is not None else None, dtype)
    assert torch.equal(oc, o.conj()) and torch.equal(hTc, hT.conj())


@_settings(20)
@given(data=st.data())
def test_phase_equivariance(data):
    """o is ℂ-linear in (c, h_0): (c, h_0) → (i·c, i·h_0) gives i·o.  Multiplying by i only swaps and negates parts
    (exact), so the oracle — exact, then rounded symmetrically — gives i·o bitwise; a form errs by at most its bound
    on each run, so by twice its bound."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    form = data.draw(st.sampled_from(FORMS), label="form")
    dims, x, h0 = _draw_case(data, dtype)
    xr = dict(x, c_re=-x["c_im"], c_im=x["c_re"])
    h0r = h0 * 1j if h0 is not None else None
    res, rot = hgrn_layer_oracle(**x, initial_state=h0), hgrn_layer_oracle(**xr, initial_state=h0r)
    for k in ("o", "final_state"):
        want = torch.complex(-res.values[k].imag, res.values[k].real)
        assert torch.equal(rot.values[k], want), k
    o, _ = _run(form, x, h0, dtype)
    orot, _ = _run(form, xr, h0r, dtype)
    bo = SPEC.error_model.bound(res.steps["o"], res.mag["o"], res.logmass["o"], dtype, get_form(
        f"hgrn-layer/{form}").traits)
    assert ((orot.to(torch.complex128) - 1j * o.to(torch.complex128)).abs() <= 2 * bo).all()


@_settings(40)
@given(data=st.data())
def test_combine_associative_over_complex(data):
    """(a₁,b₁)∘(a₂,b₂) = (a₁a₂, a₂b₁ + b₂) is associative over ℂ: both bracketings agree in 60-digit mpmath, and the
    scan form's combine in complex128 matches the exact one within the error model at one step."""
    import mpmath

    from rnnconf.spec.diagonal import combine

    vals = [(data.draw(st.floats(0.0, 1.0), label=f"|a{j}|"), data.draw(st.floats(-math.pi, math.pi), label=f"arg{j}"),
             data.draw(st.floats(-1e3, 1e3), label=f"re b{j}"), data.draw(st.floats(-1e3, 1e3), label=f"im b{j}"))
            for j in range(3)]
    with mpmath.workdps(60):
        ps = [(mpmath.mpf(r) * mpmath.expjpi(mpmath.mpf(t) / mpmath.pi), mpmath.mpc(br, bi)) for r, t, br, bi in vals]
        left, right = combine(combine(ps[0], ps[1]), ps[2]), combine(ps[0], combine(ps[1], ps[2]))
        for lv, rv in zip(left, right):
            assert abs(lv - rv) <= mpmath.mpf(10) ** -55 * (1 + abs(lv))
        exact = combine(ps[0], ps[1])
    scan = get_form("hgrn-layer/scan")
    tp = [(torch.tensor([complex(a)], dtype=torch.complex128), torch.tensor([complex(b)], dtype=torch.complex128))
          for a, b in ps]
    got = scan.combine(tp[0], tp[1])
    (a1, b1), (a2, b2) = [(a.abs(), b.abs()) for a, b in tp[:2]]
    one = torch.tensor(1.0, dtype=torch.float64)
    for g, want, m in zip(got, exact, (a1 * a2, a2 * b1 + b2)):
        bound = SPEC.error_model.bound(one, m, None, torch.float64, scan.traits)
        assert (g - complex(want)).abs().item() <= bound.item()


@_settings(30)
@given(data=st.data())
def test_gradients_agree_with_float64_sequential(data):
    """Gradients of L = Σ Re(conj(do)·o) + Re(conj(dht)·h_T) in every input, γ, θ and h_0 agree with float64
    autograd of the sequential form within this form's bound plus the reference's, both from the error model on
    S.grad_magnitudes (with the cumulative-sum term for chunkwise forms) and the total log-mass G_T.  Edges of the
    domains included: γ = 0 with f = −1e4 is where a purely log-space chunk form loses ∂/∂γ."""
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    form = data.draw(st.sampled_from(FORMS), label="form")
    dims, x, h0 = _draw_case(data, dtype, T_hi=30)
    cd = _compute(dtype)
    B, T, D = dims["B"], dims["T"], dims["D"]
    seed = data.draw(st.integers(0, 2**31 - 1), label="do.seed")
    gen = torch.Generator().manual_seed(seed)
    do = round_to(torch.randn(B, T, D, 2, generator=gen, dtype=torch.float64), cd)
    do = torch.complex(do[..., 0], do[..., 1])
    dht = None
    if data.draw(st.booleans(), label="final-state gradient"):
        dht = round_to(torch.randn(B, D, 2, generator=gen, dtype=torch.float64), cd)
        dht = torch.complex(dht[..., 0], dht[..., 1])

    def grads(name, dt):
        leaves = {k: v.to(dt).clone().requires_grad_(True) for k, v in x.items()}
        h = h0.to(S.complex_dtype(_compute(dt))).clone().requires_grad_(True) if h0 is not None else None
        o, hT = get_form(f"hgrn-layer/{name}").fn(*leaves.values(), initial_state=h, output_final_state=True)
        loss = (o * do.to(o.dtype).conj()).real.sum()
        if dht is not None:
            loss = loss + (hT * dht.to(o.dtype).conj()).real.sum()
        wrt = list(leaves.values()) + ([h] if h is not None else [])
        gs = torch.autograd.grad(loss, wrt)
        return dict(zip(list(leaves) + ["initial_state"], gs))

    ref, got = grads("sequential", torch.float64), grads(form, dtype)
    target = get_form(f"hgrn-layer/{form}")
    mags = S.grad_magnitudes(x, h0, do, dht, cumsum=target.traits.cumsum != "none")
    GT = hgrn_layer_oracle(**x, initial_state=h0).logmass["final_state"]  # [B, D]
    G = {3: GT[:, None], 2: GT, 1: GT.max(0).values}
    steps = torch.tensor(float(T + 1), dtype=torch.float64)
    em = SPEC.error_model
    for name, g in got.items():
        r = ref[name]
        g, r = (g.to(torch.complex128), r.to(torch.complex128)) if r.is_complex() else (g.double(), r.double())
        m = mags[name]
        bnd = (em.bound(steps, m, G[m.dim()], dtype, target.traits)
               + em.bound(steps, m, G[m.dim()], torch.float64, get_form("hgrn-layer/sequential").traits))
        assert torch.isfinite(g).all(), name
        assert ((g - r).abs() <= bnd).all(), (name, float(((g - r).abs() / bnd).max()))


@pytest.mark.parametrize("form", FORMS)
def test_half_inputs_give_complex64(form):
    x = {k: torch.zeros(1, 3, 2, dtype=torch.float16) for k in ("f", "c_re", "c_im")}
    x.update(gamma=torch.zeros(2, dtype=torch.float16), theta=torch.zeros(2, dtype=torch.float16))
    o, hT = get_form(f"hgrn-layer/{form}").fn(**x, output_final_state=True)
    assert o.dtype == hT.dtype == torch.complex64


@pytest.mark.parametrize("form", FORMS)
def test_varlen_with_no_sequences_keeps_complex_dtype(form):
    x = {k: torch.zeros(1, 0, 2) for k in ("f", "c_re", "c_im")}
    x.update(gamma=torch.zeros(2), theta=torch.zeros(2))
    o, hT = get_form(f"hgrn-layer/{form}").fn(**x, output_final_state=True, cu_seqlens=torch.tensor([0]))
    assert o.shape == (1, 0, 2) and hT.shape == (0, 2) and o.dtype == hT.dtype == torch.complex64


def test_domain_draws_stay_in_domain():
    """The gamma domain's top edge 1 − 2^-10 rounds to 1 in bfloat16: the strategies must step back inside."""
    d: Domain = SPEC.arg("gamma").domain
    assert torch.tensor(1 - 2.0**-10).to(torch.bfloat16).item() == 1.0
    assert d.contains(round_to(torch.tensor([1 - 2.0**-10], dtype=torch.float64), torch.bfloat16, d))
