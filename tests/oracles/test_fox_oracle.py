"""The FoX oracle against closed forms and itself at doubled precision; tolerances from unit roundoff only."""
import math

import mpmath
import torch

from rnnconf.oracles.forgetting_attention import attention_oracle, forgetting_attention_oracle

U64 = 2.0**-53


def _inputs(B=1, T=9, H=2, K=3, V=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64)
    k = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64)
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    g = -torch.rand(B, T, H, generator=gen, dtype=torch.float64) * 3
    return q, k, v, g


def test_equal_scores_give_running_mean():
    """q ≡ 0 and g ≡ 0: every weight 1/(i+1), o_i = mean(v_0..v_i)."""
    q, k, v, g = _inputs()
    res = forgetting_attention_oracle(torch.zeros_like(q), k, v, torch.zeros_like(g))
    mean = torch.cumsum(v, 1) / torch.arange(1, v.shape[1] + 1, dtype=torch.float64).view(1, -1, 1, 1)
    assert torch.allclose(res.values["o"], mean, rtol=4 * U64 * v.shape[1], atol=0)


def test_strong_decay_gives_identity():
    q, k, v, g = _inputs()
    res = forgetting_attention_oracle(q, k, v, torch.full_like(g, -1e4))
    assert torch.equal(res.values["o"], v)


def test_geometric_decay_closed_form():
    """q ≡ 0, g ≡ γ: weights ∝ e^{−γ(i−j)} — a geometric series, summed in closed form in mpmath."""
    q, k, v, g = _inputs(T=7, H=1, V=1)
    gam = 0.7
    res = forgetting_attention_oracle(torch.zeros_like(q), k, v, torch.full_like(g, -gam))
    with mpmath.workdps(40):
        for i in range(7):
            w = [mpmath.exp(-mpmath.mpf(gam) * (i - j)) for j in range(i + 1)]
            want = mpmath.fsum(wj * v[0, j, 0, 0].item() for j, wj in zip(range(i + 1), w)) / mpmath.fsum(w)
            assert abs(res.values["o"][0, i, 0, 0].item() - float(want)) <= U64 * abs(float(want)) + 1e-300


def test_first_gate_is_irrelevant_exactly():
    q, k, v, g = _inputs()
    a = forgetting_attention_oracle(q, k, v, g)
    g2 = g.clone()
    g2[:, 0] = -1e4
    b = forgetting_attention_oracle(q, k, v, g2)
    assert torch.equal(a.values["o"], b.values["o"])


def test_precision_doubling():
    """30 and 60 digits agree to the 30-digit result's own precision (then rounded to float64: ≤ 1 u apart)."""
    q, k, v, g = _inputs(seed=3)
    g[:, 4] = -1e4
    a = forgetting_attention_oracle(q, k, v, g, dps=30)
    b = forgetting_attention_oracle(q, k, v, g, dps=60)
    assert ((a.values["o"] - b.values["o"]).abs() <= U64 * b.mag["o"]).all()


def test_no_decay_path_equals_zero_gate():
    q, k, v, g = _inputs(seed=5)
    a = attention_oracle(q, k, v, None)
    b = forgetting_attention_oracle(q, k, v, torch.zeros_like(g))
    assert torch.equal(a.values["o"], b.values["o"])


def test_weights_are_a_distribution_and_bound_terms_nonnegative():
    q, k, v, g = _inputs(seed=7)
    res = forgetting_attention_oracle(q, k, v, g)
    P = res.aux["P"]
    T = P.shape[-1]
    assert torch.all(P.triu(1) == 0)
    assert ((P.sum(-1) - 1).abs() <= T * U64).all()
    assert (res.cond["o"] >= 0).all() and (res.mag["o"] >= res.values["o"].abs() * (1 - 4 * U64)).all()
    assert math.isfinite(float(res.cond["o"].max()))
