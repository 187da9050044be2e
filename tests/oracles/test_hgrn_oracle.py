"""The hgrn oracle is itself tested: closed forms, precision doubling, and the combine's exact associativity."""
import math

import mpmath
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnconf.oracles import get_oracle
from rnnconf.spec.diagonal import combine

oracle = get_oracle("hgrn")
SETTINGS = settings(max_examples=15, derandomize=True, deadline=None)


@SETTINGS
@given(a=st.floats(1e-3, 1.0), x=st.floats(-10, 10), h0=st.floats(-10, 10), T=st.integers(1, 40))
def test_constant_gate_closed_form(a, x, h0, T):
    """g ≡ log a, x ≡ c: h_t = a^t h0 + c (1 − a^t)/(1 − a)  (= h0 + t c when a = 1)."""
    g = torch.full((1, T, 1), math.log(a), dtype=torch.float64)
    xs = torch.full((1, T, 1), x, dtype=torch.float64)
    r = oracle(xs, g, torch.tensor([[h0]], dtype=torch.float64), dps=40)
    with mpmath.workdps(40):
        A = mpmath.exp(mpmath.mpf(math.log(a)))
        for t in range(1, T + 1):
            c = mpmath.mpf(x)
            want = A**t * h0 + (c * (1 - A**t) / (1 - A) if A != 1 else t * c)
            got = r.exact["o"][0][t - 1][0]
            assert abs(got - want) <= mpmath.mpf(10) ** -30 * (1 + abs(want)), (t, got, want)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 30), D=st.integers(1, 4))
def test_precision_doubling(seed, T, D):
    """Doubling the working precision changes the result only in digits beyond the first one's precision."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, T, D, generator=gen, dtype=torch.float64)
    g = -torch.rand(2, T, D, generator=gen, dtype=torch.float64) * 5
    lo, hi = oracle(x, g, dps=30), oracle(x, g, dps=60)
    for b in range(2):
        for t in range(T):
            for d in range(D):
                p, q = lo.exact["o"][b][t][d], hi.exact["o"][b][t][d]
                m = lo.mag["o"][b, t, d].item()
                assert abs(p - q) <= mpmath.mpf(10) ** -27 * m


def test_magnitude_shadow_and_log_mass():
    x = torch.tensor([[[1.0], [-1.0], [1.0]]], dtype=torch.float64)
    g = torch.zeros(1, 3, 1, dtype=torch.float64)
    r = oracle(x, g)
    assert r.values["o"].flatten().tolist() == [1.0, 0.0, 1.0]
    assert r.mag["o"].flatten().tolist() == [1.0, 2.0, 3.0]  # cancellation shows as |h| ≪ m
    g = torch.tensor([[[-1.0], [-2.0], [-0.5]]], dtype=torch.float64)
    assert oracle(x, g).logmass["o"].flatten().tolist() == [1.0, 3.0, 3.5]


def test_reset_gate_underflows_exactly():
    x = torch.tensor([[[5.0], [2.0]]], dtype=torch.float64)
    g = torch.tensor([[[0.0], [-1e4]]], dtype=torch.float64)
    r = oracle(x, g, torch.tensor([[3.0]], dtype=torch.float64))
    assert abs(r.values["o"][0, 1, 0].item() - 2.0) < 1e-300 + 1e-30


@SETTINGS
@given(vals=st.lists(st.tuples(st.floats(-30, 0), st.floats(-1e3, 1e3)), min_size=3, max_size=3))
def test_combine_associative_exactly_in_mpmath(vals):
    """(p∘q)∘r = p∘(q∘r) holds exactly for the diagonal combine in exact-enough arithmetic."""
    with mpmath.workdps(80):
        p, q, r = [(mpmath.exp(mpmath.mpf(g)), mpmath.mpf(b)) for g, b in vals]
        left = combine(combine(p, q), r)
        right = combine(p, combine(q, r))
        scale = 1 + abs(left[1])
        assert abs(left[0] - right[0]) <= mpmath.mpf(10) ** -75
        assert abs(left[1] - right[1]) <= mpmath.mpf(10) ** -75 * scale
