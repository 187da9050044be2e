"""The delta-product oracle against closed forms it does not share code with: the affine-pair form
S_t = α_t A_t S_{t−1} + B_t, A_t = H_{n_h}⋯H_1, B_t = Σ_j (Π_{l>j} H_l) β_j k_j v_jᵀ (models-1.md §6), evaluated in
mpmath matrices; n_h = 1 is the gated delta rule's oracle; the factor order changes the result."""
import mpmath
import pytest
import torch

from rnnconf.oracles import get_oracle
from rnnconf.spec.delta import SpectralViolation


def _inputs(T=4, n=3, K=3, V=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, T, 1, K, generator=gen, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(1, T * n, 1, K, generator=gen, dtype=torch.float64), dim=-1)
    v = torch.randn(1, T * n, 1, V, generator=gen, dtype=torch.float64)
    g = -torch.rand(1, T, 1, generator=gen, dtype=torch.float64)
    beta = 2 * torch.rand(1, T * n, 1, generator=gen, dtype=torch.float64)
    h0 = torch.randn(1, 1, K, V, generator=gen, dtype=torch.float64)
    return q, k, v, g, beta, h0


def _affine_pairs(q, k, v, g, beta, h0, n, reverse=False):
    T, K = q.shape[1], q.shape[3]
    mpmath.mp.dps = 40
    S = mpmath.matrix(h0[0, 0].tolist())
    outs = []
    for t in range(T):
        A, Bm = mpmath.eye(K), mpmath.zeros(K, h0.shape[3])
        js = range(n - 1, -1, -1) if reverse else range(n)
        for j in js:
            kk = mpmath.matrix(k[0, t * n + j, 0].tolist())
            vv = mpmath.matrix(v[0, t * n + j, 0].tolist())
            Hj = mpmath.eye(K) - beta[0, t * n + j, 0].item() * kk * kk.T
            A, Bm = Hj * A, Hj * Bm + beta[0, t * n + j, 0].item() * kk * vv.T
        S = mpmath.exp(g[0, t, 0].item()) * A * S + Bm
        qq = mpmath.matrix(q[0, t, 0].tolist()) / mpmath.sqrt(K)
        outs.append([float(x) for x in (S.T * qq)])
    return torch.tensor(outs, dtype=torch.float64)


def test_matches_affine_pair_closed_form():
    q, k, v, g, beta, h0 = _inputs()
    res = get_oracle("delta-product")(q, k, v, g, beta, 3, initial_state=h0)
    want = _affine_pairs(q, k, v, g, beta, h0, 3)
    assert torch.allclose(res.values["o"][0, :, 0], want, rtol=0, atol=1e-14 * float(want.abs().max()))


def test_householder_order_matters():
    """The reversed product H_1⋯H_{n_h} gives a visibly different output (what the planted bug relies on)."""
    q, k, v, g, beta, h0 = _inputs(seed=3)
    res = get_oracle("delta-product")(q, k, v, g, beta, 3, initial_state=h0)
    rev = _affine_pairs(q, k, v, g, beta, h0, 3, reverse=True)
    assert float((res.values["o"][0, :, 0] - rev).abs().max()) > 1e-2


def test_nh1_is_gated_delta_rule():
    q, k, v, g, beta, h0 = _inputs(T=6, n=1)
    a = get_oracle("delta-product")(q, k, v, g, beta, 1, initial_state=h0)
    b = get_oracle("gated-delta-rule")(q, k, v, beta, g, initial_state=h0)
    for name in ("o", "final_state"):
        assert torch.equal(a.values[name], b.values[name])
        assert torch.equal(a.mag[name], b.mag[name]) and torch.equal(a.cond[name], b.cond[name])


def test_bound_ingredients_per_token():
    """Each token is charged the error after its last sub-step: steps t·n_h, finite positive cond."""
    q, k, v, g, beta, h0 = _inputs(T=5, n=2)
    res = get_oracle("delta-product")(q, k, v, g, beta, 2, initial_state=h0)
    assert res.steps["o"][0, :, 0, 0].tolist() == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert bool((res.cond["o"] > 0).all()) and bool(torch.isfinite(res.cond["o"]).all())


def test_oracle_checks_spectral_facts_on_every_call(monkeypatch):
    """The oracle refuses an example whose transitions break a spectral fact (here: a corrupted product)."""
    import rnnconf.spec.delta as d

    q, k, v, g, beta, h0 = _inputs()
    real = d.householder_products
    monkeypatch.setattr(d, "householder_products", lambda *a: 1.5 * real(*a))
    with pytest.raises(SpectralViolation):
        get_oracle("delta-product")(q, k, v, g, beta, 3, initial_state=h0)
