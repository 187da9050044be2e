"""The hgrn-layer oracle against facts derived independently of it: the closed form for constant gates, its own
answer at twice the precision, the modulus bound, and the reduction to the hgrn oracle at θ = 0."""
import mpmath
import pytest
import torch

from rnnconf.oracles.hgrn import hgrn_oracle
from rnnconf.oracles.hgrn_layer import gate_oracle, hgrn_layer_oracle, lower_bounds_oracle
from rnnconf.spec.errors import unit_roundoff

U64 = unit_roundoff(torch.float64)


def _inputs(seed, B=2, T=23, D=4, f_scale=3.0, theta_scale=3.0, state=True):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(B, T, D, generator=g, dtype=torch.float64) * f_scale
    c_re = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    c_im = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    gamma = torch.rand(D, generator=g, dtype=torch.float64)
    gamma[0] = 0.0
    theta = torch.randn(D, generator=g, dtype=torch.float64) * theta_scale
    h0 = None
    if state:
        h0 = torch.complex(torch.randn(B, D, generator=g, dtype=torch.float64),
                           torch.randn(B, D, generator=g, dtype=torch.float64))
    return f, c_re, c_im, gamma, theta, h0


@pytest.mark.parametrize("f,gamma,theta", [(0.3, 0.0, 0.7), (-2.0, 0.5, 3.0), (25.0, 0.9, -1.3), (-40.0, 0.0, 0.0)])
def test_closed_form_constant_gate(f, gamma, theta):
    """Constant f, γ, θ, c: with a = λe^{iθ}, h_t = a^t h_0 + (1 − λ) c (1 − a^t)/(1 − a)."""
    B, T, D = 1, 30, 1
    c = complex(0.8, -1.7)
    h0c = complex(-0.4, 2.2)
    res = hgrn_layer_oracle(torch.full((B, T, D), f, dtype=torch.float64),
                            torch.full((B, T, D), c.real, dtype=torch.float64),
                            torch.full((B, T, D), c.imag, dtype=torch.float64),
                            torch.tensor([gamma], dtype=torch.float64), torch.tensor([theta], dtype=torch.float64),
                            torch.tensor([[h0c]], dtype=torch.complex128), dps=40)
    with mpmath.workdps(40):
        lam = gamma + (1 - mpmath.mpf(gamma)) * (1 / (1 + mpmath.exp(-mpmath.mpf(f))))
        om = (1 - mpmath.mpf(gamma)) * mpmath.exp(-mpmath.mpf(f)) / (1 + mpmath.exp(-mpmath.mpf(f)))
        a = lam * mpmath.expj(mpmath.mpf(theta))
        cc, hh = mpmath.mpc(c.real, c.imag), mpmath.mpc(h0c.real, h0c.imag)
        for t in range(1, T + 1):
            want = a**t * hh + om * cc * (1 - a**t) / (1 - a)
            assert abs(res.exact["o"][0][t - 1][0] - want) <= mpmath.mpf(10) ** -35 * (abs(hh) + abs(cc))
        assert abs(res.exact["final_state"][0][0] - want) <= mpmath.mpf(10) ** -35 * (abs(hh) + abs(cc))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_doubling(seed):
    """Raising dps from 30 to 60 changes no value by more than 10^-25 of its magnitude shadow."""
    args = _inputs(seed, f_scale=30.0 if seed == 2 else 3.0)
    lo = hgrn_layer_oracle(*args[:5], initial_state=args[5], dps=30)
    hi = hgrn_layer_oracle(*args[:5], initial_state=args[5], dps=60)
    for name in ("o", "final_state"):
        with mpmath.workdps(60):
            diff = [abs(x - y) for x, y in zip(_flat(lo.exact[name]), _flat(hi.exact[name]))]
        mag = hi.mag[name].flatten().tolist()
        assert all(float(d) <= 1e-25 * (m + 1e-300) for d, m in zip(diff, mag))
        assert torch.equal(lo.values[name], hi.values[name]) or \
            ((lo.values[name] - hi.values[name]).abs() <= 2 * U64 * hi.mag[name]).all()


def _flat(x):
    if isinstance(x, list):
        return [w for v in x for w in _flat(v)]
    return [x]


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_modulus_bound(seed):
    """|h_t| ≤ max(|h_0|, max_{s≤t}|c_s|), checked on the mpc values (slack 10^-25 relative: the oracle's own
    precision); and the magnitude shadow bounds |h_t| too."""
    f, c_re, c_im, gamma, theta, h0 = _inputs(seed, f_scale=10.0)
    res = hgrn_layer_oracle(f, c_re, c_im, gamma, theta, h0)
    B, T, D = f.shape
    with mpmath.workdps(30):
        for b in range(B):
            for d in range(D):
                M = abs(mpmath.mpc(complex(h0[b, d])))
                for t in range(T):
                    M = max(M, abs(mpmath.mpc(float(c_re[b, t, d]), float(c_im[b, t, d]))))
                    h = res.exact["o"][b][t][d]
                    assert abs(h) <= M * (1 + mpmath.mpf(10) ** -25)
    assert (res.values["o"].abs() <= res.mag["o"] * (1 + 2 * U64)).all()


@pytest.mark.parametrize("seed", [0, 5])
def test_reduces_to_hgrn_at_zero_angle(seed):
    """θ = 0, c_im = 0, real h_0: the hgrn oracle on x = (1 − λ)c, g = log λ (correctly rounded to float64).

    Those two roundings perturb x_s by ≤ u|x_s| and each decay by a factor e^{±u|g_s|}; to first order the result
    moves by ≤ u(1 + G_t)·m_t (G_t = Σ|g_s|, m_t the magnitude shadow); 2× covers the second order."""
    f, c_re, _, gamma, _, h0 = _inputs(seed, f_scale=5.0)
    D = f.shape[-1]
    zero_t = torch.zeros(D, dtype=torch.float64)
    h0r = h0.real.contiguous()
    res = hgrn_layer_oracle(f, c_re, torch.zeros_like(c_re), gamma, zero_t, h0r)
    gates = gate_oracle(f, gamma)
    with mpmath.workdps(30):  # x = (1 − λ) c correctly rounded
        x = torch.tensor([float(mpmath.mpf(w) * mpmath.mpf(c)) for w, c in
                          zip(gates["complement"].flatten().tolist(), c_re.flatten().tolist())],
                         dtype=torch.float64).reshape(f.shape)
    ref = hgrn_oracle(x, gates["log_lambda"], h0r)
    for name in ("o", "final_state"):
        assert (res.values[name].imag == 0).all()
        tol = 2 * U64 * (1 + res.logmass[name]) * res.mag[name] + 1e-300
        assert ((res.values[name].real - ref.values[name]).abs() <= tol).all()
    rel = 2 * U64 * (1 + res.logmass["o"].max()) * (res.mag["o"].shape[1] + 1)  # two float64 round-trips, T steps
    assert torch.allclose(res.mag["o"], ref.mag["o"], rtol=float(rel), atol=0)


def test_zero_length_and_no_state():
    f, c_re, c_im, gamma, theta, _ = _inputs(0, T=0, state=False)
    res = hgrn_layer_oracle(f, c_re, c_im, gamma, theta)
    assert res.values["o"].shape == (2, 0, 4) and res.values["o"].dtype == torch.complex128
    assert (res.values["final_state"] == 0).all() and res.values["final_state"].shape == (2, 4)


def test_lower_bounds_oracle_invariants():
    """γ^0 = 0, non-decreasing, γ^{L−1} = 1 − P_0 < 1 in exact arithmetic, even for a spread of ±80."""
    g = torch.Generator().manual_seed(0)
    Gamma = torch.randn(12, 5, generator=g, dtype=torch.float64) * 3
    Gamma[0, 1], Gamma[:, 2] = -80.0, torch.linspace(-80, 80, 12, dtype=torch.float64)
    res = lower_bounds_oracle(Gamma)
    with mpmath.workdps(200):  # above the oracle's own (raised) precision: no rounding in these checks
        for d in range(5):
            col = [res.exact["gamma"][j][d] for j in range(12)]
            P0 = res.exact["softmax"][0][d]
            assert col[0] == 0
            assert all(x <= y for x, y in zip(col, col[1:]))
            assert col[-1] < 1 and abs((1 - col[-1]) - P0) <= mpmath.mpf(10) ** -25 * P0  # P_0 resolved
    assert (res.values["top_gap"] > 0).all() and res.values["top_gap"][2] < 1e-60
    assert torch.allclose(res.values["gap"], 1 - res.values["gamma"], rtol=0, atol=4 * U64)
