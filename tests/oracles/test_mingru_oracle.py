"""The mingru / minlstm oracles are themselves tested: closed forms for constant gates, precision doubling, gates that
sum to one (also at logits ±1e4, where f′ = i′ = 1/2 rather than 0/0), saturated gates, the error-model ingredients,
and the stated initial-state convention (initial_state is h_0; the paper's log-space code equals starting from g(h_0)).
"""
import math

import mpmath
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnconf.oracles import get_oracle
from rnnconf.oracles.mingru import mingru_oracle, minlstm_oracle, mp_mingru_gates, mp_minlstm_gates
from rnnconf.spec import diagonal, get_spec
from rnnconf.spec.errors import tiny, unit_roundoff
from rnnconf.spec.mingru import g, log_g, mingru_coeffs, mingru_log_a, minlstm_coeffs, minlstm_log_a

SETTINGS = settings(max_examples=15, derandomize=True, deadline=None)
LOGITS = (1e4, -1e4, 0.0, 30.0, -30.0, 1e-3, -745.5, 5.25)
logit = st.one_of(st.sampled_from(LOGITS), st.floats(-40, 40))

U64 = unit_roundoff(torch.float64)
TINY64 = tiny(torch.float64)


def _full(v, T):
    return torch.full((1, T, 1), v, dtype=torch.float64)


def test_registered():
    assert get_oracle("mingru") is mingru_oracle
    assert get_oracle("minlstm") is minlstm_oracle


@SETTINGS
@given(z=st.floats(-20, 20), c=st.floats(-10, 10), h0=st.floats(-10, 10), T=st.integers(1, 40))
def test_mingru_constant_gate_closed_form(z, c, h0, T):
    """z ≡ z, h̃ ≡ c: a = σ(−z), b = σ(z) c ⇒ h_t = a^t h0 + b (1 − a^t)/(1 − a) = a^t h0 + c (1 − a^t)."""
    r = mingru_oracle(_full(z, T), _full(c, T), torch.tensor([[h0]], dtype=torch.float64), dps=40)
    with mpmath.workdps(50):
        Z = mpmath.mpf(z)
        A, S = 1 / (1 + mpmath.exp(Z)), 1 / (1 + mpmath.exp(-Z))
        for t in range(1, T + 1):
            want = A**t * h0 + S * c * (1 - A**t) / (1 - A)
            got = r.exact["o"][0][t - 1][0]
            assert abs(got - want) <= mpmath.mpf(10) ** -36 * (abs(h0) + abs(c)), (t, got, want)


@SETTINGS
@given(f=logit, i=logit, c=st.floats(-10, 10), h0=st.floats(-10, 10), T=st.integers(1, 40))
def test_minlstm_constant_gate_closed_form(f, i, c, h0, T):
    """f, i constant: a = f′, b = i′ c (from the defining ratio σ(·)/(σ(f)+σ(i))) ⇒ h_t = a^t h0 + b (1 − a^t)/(1 − a)
    = a^t h0 + c (1 − a^t) since 1 − a = i′ (the second form: logits ±1e4 put a within 1e-4000 of 1)."""
    r = minlstm_oracle(_full(f, T), _full(i, T), _full(c, T), torch.tensor([[h0]], dtype=torch.float64), dps=40)
    with mpmath.workdps(60):
        sf, si = mpmath.mpf(1) / (1 + mpmath.exp(-f)), mpmath.mpf(1) / (1 + mpmath.exp(-i))
        A = sf / (sf + si)
        for t in range(1, T + 1):
            want = A**t * h0 + c * (1 - A**t)
            got = r.exact["o"][0][t - 1][0]
            assert abs(got - want) <= mpmath.mpf(10) ** -36 * (abs(h0) + abs(c)), (f, i, t, got, want)


def _draw_inputs(seed, names, T, D, edge_fraction=0.3):
    gen = torch.Generator().manual_seed(seed)
    edges = torch.tensor(LOGITS, dtype=torch.float64)
    out = {}
    for n in names:
        v = torch.randn(2, T, D, generator=gen, dtype=torch.float64) * 5
        pick = edges[torch.randint(len(LOGITS), v.shape, generator=gen)]
        out[n] = torch.where(torch.rand(v.shape, generator=gen, dtype=torch.float64) < edge_fraction, pick, v)
    out["h_tilde"] = torch.randn(2, T, D, generator=gen, dtype=torch.float64) * 3
    return out, torch.randn(2, D, generator=gen, dtype=torch.float64)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 30), D=st.integers(1, 3), lstm=st.booleans())
def test_precision_doubling(seed, T, D, lstm):
    """dps 30 and dps 60 agree to ~1e-28 relative to the magnitude shadow, on inputs with ±1e4 / ±30 logits."""
    oracle, names = (minlstm_oracle, ["f", "i"]) if lstm else (mingru_oracle, ["z"])
    x, h0 = _draw_inputs(seed, names, T, D)
    lo, hi = oracle(**x, initial_state=h0, dps=30), oracle(**x, initial_state=h0, dps=60)
    with mpmath.workdps(60):
        for b in range(2):
            for d in range(D):
                for t in range(T):
                    err = abs(lo.exact["o"][b][t][d] - hi.exact["o"][b][t][d])
                    assert err <= mpmath.mpf(10) ** -28 * float(hi.mag["o"][b, t, d]), (b, t, d, err)
                assert lo.exact["final_state"][b][d] == lo.exact["o"][b][T - 1][d]


@settings(max_examples=40, derandomize=True, deadline=None)
@given(f=logit, i=logit, dps=st.sampled_from([30, 60]))
def test_gates_sum_to_one(f, i, dps):
    """f′ + i′ = 1 and (1 − σ(z)) + σ(z) = 1 to working precision, at every logit (no NaN, no 0/0)."""
    with mpmath.workdps(dps):
        eps = mpmath.mpf(10) ** (1 - dps)
        fp, ip, la = mp_minlstm_gates(mpmath.mpf(f), mpmath.mpf(i))
        assert mpmath.isfinite(fp) and mpmath.isfinite(ip) and mpmath.isfinite(la)
        assert 0 <= fp <= 1 and 0 <= ip <= 1
        assert abs(fp + ip - 1) <= eps
        assert abs(la - mpmath.log(fp)) <= eps * (1 + abs(la))
        a, gate, lz = mp_mingru_gates(mpmath.mpf(f))
        assert abs(a + gate - 1) <= eps
        assert abs(lz - mpmath.log(a)) <= eps * (1 + abs(lz))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 20), lstm=st.booleans(), with_h0=st.booleans())
def test_positive_inputs_stay_positive(seed, T, lstm, with_h0):
    """h_0 > 0 and h̃_s > 0 for s ≤ t ⇒ h_t > 0 (a convex combination of positives), exactly: on the exact values and
    after rounding to float64, including at saturating logits ±30 and at h̃ down to 1e-30."""
    gen = torch.Generator().manual_seed(seed)
    D = 3
    logits = [(torch.randn(1, T, D, generator=gen, dtype=torch.float64) * 30).clamp(-40, 40) for _ in range(2)]
    h_t = torch.exp(torch.randn(1, T, D, generator=gen, dtype=torch.float64) * 20).clamp(min=1e-30)
    h0 = torch.rand(1, D, generator=gen, dtype=torch.float64) + 1e-3 if with_h0 else None
    r = minlstm_oracle(*logits, h_t, h0) if lstm else mingru_oracle(logits[0], h_t, h0)
    assert all(x > 0 for b in r.exact["o"] for t in b for x in t)
    assert (r.values["o"] > 0).all() and (r.values["final_state"] > 0).all()


def test_minlstm_both_logits_very_negative():
    """σ(−1e4) underflows in every float format, but f′ is a ratio: exactly 1/2 at f = i = −1e4, and
    f′ = e^f/(e^f + e^i) = 1/(1 + e^{i−f}) (up to e^{−1e4} relative) when both logits are ≪ 0."""
    fp, ip, _ = mp_minlstm_gates(mpmath.mpf(-1e4), mpmath.mpf(-1e4))
    assert fp == mpmath.mpf(0.5) and ip == mpmath.mpf(0.5)
    with mpmath.workdps(30):
        fp, ip, la = mp_minlstm_gates(mpmath.mpf(-1e4), mpmath.mpf(-1e4 + 3))
        assert abs(fp - 1 / (1 + mpmath.exp(3))) < mpmath.mpf(10) ** -28
        assert abs(la + mpmath.log1p(mpmath.exp(3))) < mpmath.mpf(10) ** -28


def test_no_nan_at_saturated_logits():
    """Logits ±1e4 everywhere: finite results; saturated gates reset (a = 0 ⇒ h_t = h̃_t) or hold (a = 1 ⇒
    h_t = h_{t−1}) to float64 rounding."""
    T, D = 6, 4
    E = 1e4
    h_t = torch.linspace(-2, 3, T * D, dtype=torch.float64).view(1, T, D)
    h0 = torch.tensor([[0.5, -1.5, 2.0, 7.0]], dtype=torch.float64)
    r = mingru_oracle(torch.full((1, T, D), E, dtype=torch.float64), h_t, h0)
    assert torch.equal(r.values["o"], h_t)
    r = mingru_oracle(torch.full((1, T, D), -E, dtype=torch.float64), h_t, h0)
    assert torch.equal(r.values["o"], h0[:, None].expand(1, T, D))
    for fv, iv, want in [(-E, E, h_t), (E, -E, h0[:, None].expand(1, T, D)), (-E, -30.0, h_t), (30.0, -E, None),
                         (-E, -E, None), (E, E, None)]:
        r = minlstm_oracle(torch.full((1, T, D), fv, dtype=torch.float64),
                           torch.full((1, T, D), iv, dtype=torch.float64), h_t, h0)
        for k in ("o", "final_state"):
            assert torch.isfinite(r.values[k]).all() and torch.isfinite(r.mag[k]).all()
            assert torch.isfinite(r.logmass[k]).all()
        if want is not None:
            assert torch.equal(r.values["o"], want), (fv, iv)
    # f = i = ±1e4: f′ = i′ = 1/2 ⇒ h_t = (h_{t−1} + h̃_t)/2
    for v in (E, -E):
        r = minlstm_oracle(torch.full((1, T, D), v, dtype=torch.float64),
                           torch.full((1, T, D), v, dtype=torch.float64), h_t, h0)
        with mpmath.workdps(40):
            for d in range(D):
                h = mpmath.mpf(float(h0[0, d]))
                for t in range(T):
                    h = (h + float(h_t[0, t, d])) / 2
                    assert abs(r.exact["o"][0][t][d] - h) <= mpmath.mpf(10) ** -29 * (1 + abs(h))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(0, 20), lstm=st.booleans(), with_h0=st.booleans())
def test_shadows_match_spec_coefficients(seed, T, lstm, with_h0):
    """Magnitude shadow and log-mass agree with the spec's float64 (coeffs, log_a) run through diagonal.shadows;
    the shadow bounds the value; shapes hold at T = 0."""
    oracle, names = (minlstm_oracle, ["f", "i"]) if lstm else (mingru_oracle, ["z"])
    coeffs, log_a = (minlstm_coeffs, minlstm_log_a) if lstm else (mingru_coeffs, mingru_log_a)
    x, h0 = _draw_inputs(seed, names, T, 3)
    h0 = h0 if with_h0 else None
    r = oracle(**x, initial_state=h0)
    assert r.values["o"].shape == (2, T, 3) and r.values["final_state"].shape == (2, 3)
    a, b = coeffs(**x)
    mag, G = diagonal.shadows(a, b, h0, log_a(**x))
    # the float64 torch recomputation carries the spec's own error model: c_step roundings per step
    rel = get_spec("minlstm" if lstm else "mingru").error_model.c_step * (T + 1) * U64
    assert torch.allclose(r.mag["o"], mag, rtol=rel, atol=TINY64)
    assert torch.allclose(r.logmass["o"], G, rtol=rel, atol=TINY64)
    assert (r.values["o"].abs() <= r.mag["o"] * (1 + 1e-15)).all()
    assert torch.equal(r.steps["o"][0, :, 0], torch.arange(1, T + 1, dtype=torch.float64))
    if T == 0:
        want = h0 if h0 is not None else torch.zeros(2, 3, dtype=torch.float64)
        assert torch.equal(r.values["final_state"], want)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 20), lstm=st.booleans())
def test_initial_state_convention(seed, T, lstm):
    """initial_state is h_0.  The paper's log-space reference (log h_0 := log g(h_0), then Heinsen's scan), written
    out here in float64, equals the oracle started from g(h_0) — and not the oracle started from h_0."""
    oracle, names = (minlstm_oracle, ["f", "i"]) if lstm else (mingru_oracle, ["z"])
    coeffs_log = minlstm_log_a if lstm else mingru_log_a
    x, h0 = _draw_inputs(seed, names, T, 3, edge_fraction=0.0)
    x["h_tilde"] = x["h_tilde"].abs() + 0.25
    h0 = h0.abs() + 0.5  # h_0 ≥ 0.5: g(h_0) = h_0 + 0.5 differs from h_0 by 0.5
    log_a = coeffs_log(**x)
    a, b = (minlstm_coeffs if lstm else mingru_coeffs)(**x)
    log_b = torch.cat([log_g(h0)[:, None], torch.log(b)], 1)
    a_star = torch.cat([torch.zeros(2, 1, 3, dtype=torch.float64), torch.cumsum(log_a, 1)], 1)
    paper = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, 1))[:, 1:]
    from_g = oracle(**x, initial_state=g(h0))
    from_h0 = oracle(**x, initial_state=h0)
    tol = 1e-12 * from_g.mag["o"]
    assert ((paper - from_g.values["o"]).abs() <= tol).all()
    a1 = a[:, 0]  # the first step keeps a_1 (g(h_0) − h_0) = 0.5 a_1 of the difference
    assert ((paper[:, 0] - from_h0.values["o"][:, 0]).abs() >= 0.49 * a1).all()


def test_g_and_log_g():
    x = torch.tensor([-1e4, -30.0, -1.0, -1e-300, 0.0, 1e-3, 2.0, 1e4], dtype=torch.float64)
    assert (g(x)[1:] > 0).all() and g(x)[0] == 0  # σ(−1e4) underflows to 0 in float64; log_g stays finite
    # exp(log g) vs g: exp of a rounded log costs ≤ (2 + |log g|) u relative
    rel = (2 + float(log_g(x[1:]).abs().max())) * U64
    assert torch.allclose(torch.exp(log_g(x[1:])), g(x[1:]), rtol=rel, atol=0)
    assert log_g(x)[0] == -1e4 and math.isfinite(float(log_g(x)[0]))
    assert g(torch.tensor(0.0)) == 0.5 and g(torch.tensor(-0.0)) == 0.5
