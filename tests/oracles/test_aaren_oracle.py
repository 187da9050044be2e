"""The aaren oracle (arXiv 2405.13956) is itself tested: its two paths — the attention path (a stable softmax per row)
and the (m, u, w) RNN left fold — agree; closed forms (equal scores give running means, T = 1 gives v); precision
doubling; the exact combine is associative and commutative with identity (−∞, 0, 0); 1 ≤ u_k ≤ k; aaren is FoX's
attention with g ≡ 0 and q_t ≡ q.  Tolerances are powers of ten tied to the oracle's working precision (dps), relative
to the magnitude shadow.
"""
import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnconf.oracles import get_oracle
from rnnconf.oracles.aaren import aaren_oracle, aaren_rnn, mp_combine, mp_identity, rnn_path
from rnnconf.oracles.forgetting_attention import attention_oracle
from rnnconf.spec import get_spec

SETTINGS = settings(max_examples=15, derandomize=True, deadline=None)
SPREADS = (1.0, 0.1, 10.0, 100.0)  # 100: score gaps in the thousands, most weights underflow any float


def _inputs(seed, B, T, H, K, V, spread):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, K, generator=gen, dtype=torch.float64) * spread
    k = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64)
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64) * 3
    return q, k, v


def _close(a, b, tol, scale):
    """|a − b| ≤ tol·(scale + 10^-300), elementwise over nested mpf lists [B][T][H][V] (scale: same layout, floats)."""
    for ab, bb, sb in zip(a, b, scale):
        for at, bt, st_ in zip(ab, bb, sb):
            for ah, bh, sh in zip(at, bt, st_):
                for x, y, s in zip(ah, bh, sh):
                    assert abs(x - y) <= tol * (s + 1e-300), (x, y, s)


def test_registered():
    assert get_oracle("aaren") is aaren_oracle
    assert get_spec("aaren").extra["reference_form"] == "dense"


def test_rejects_initial_state():
    q, k, v = _inputs(0, 1, 3, 1, 2, 2, 1.0)
    with pytest.raises(ValueError, match="state-free"):
        aaren_oracle(q, k, v, initial_state=torch.zeros(1, 2))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 24), K=st.integers(1, 4), V=st.integers(1, 3),
       spread=st.sampled_from(SPREADS))
def test_rnn_path_equals_attention_path(seed, T, K, V, spread):
    """w_t/u_t of the (m, u, w) left fold = Σ_j softmax_j(s) v_j of the attention path, to ~10^-(dps−5) relative to
    the magnitude shadow Σ_j P_tj |v_j|."""
    q, k, v = _inputs(seed, 2, T, 2, K, V, spread)
    r = aaren_oracle(q, k, v, dps=30)
    _close(r.aux["rnn_o"], r.exact["o"], mpmath.mpf(10) ** -25, r.mag["o"].tolist())


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 24), V=st.integers(1, 3), zero_q=st.booleans())
def test_equal_scores_give_running_mean(seed, T, V, zero_q):
    """All scores equal (q = 0, or every k_j the same) ⇒ every weight is 1/t: o_t = mean(v_1..v_t), and u_t = t."""
    q, k, v = _inputs(seed, 1, T, 1, 3, V, 5.0)
    if zero_q:
        q = torch.zeros_like(q)
    else:
        k = k[:, :1].expand_as(k).clone()
    r = aaren_oracle(q, k, v, dps=30)
    with mpmath.workdps(40):
        for t in range(T):
            assert abs(r.aux["u_exact"][0][0][t] - (t + 1)) <= mpmath.mpf(10) ** -27 * (t + 1)
            for c in range(V):
                mean = mpmath.fsum(mpmath.mpf(float(v[0, j, 0, c])) for j in range(t + 1)) / (t + 1)
                scale = max(abs(float(v[0, j, 0, c])) for j in range(t + 1))
                for o in (r.exact["o"], r.aux["rnn_o"]):
                    assert abs(o[0][t][0][c] - mean) <= mpmath.mpf(10) ** -27 * scale, (t, c)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), V=st.integers(1, 4), spread=st.sampled_from(SPREADS))
def test_single_step_is_v(seed, V, spread):
    """T = 1 ⇒ the one key has weight 1: o = v exactly (both paths), u_1 = 1."""
    q, k, v = _inputs(seed, 2, 1, 2, 3, V, spread)
    r = aaren_oracle(q, k, v)
    assert torch.equal(r.values["o"], v)
    assert torch.equal(mpmath_tensor(r.aux["rnn_o"], v.shape), v)
    assert torch.equal(r.aux["u"], torch.ones(2, 2, 1, dtype=torch.float64))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 24), V=st.integers(1, 3), spread=st.sampled_from(SPREADS))
def test_output_in_convex_hull_of_values(seed, T, V, spread):
    """The weights are a probability vector ⇒ min_{j≤t} v_j ≤ o_t ≤ max_{j≤t} v_j per channel, on the exact o (both
    paths, to the oracle's working precision relative to the hull's edge)."""
    q, k, v = _inputs(seed, 2, T, 2, 3, V, spread)
    r = aaren_oracle(q, k, v, dps=30)
    lo, hi = torch.cummin(v, 1).values.tolist(), torch.cummax(v, 1).values.tolist()
    tol = mpmath.mpf(10) ** -25
    for o in (r.exact["o"], r.aux["rnn_o"]):
        for ob, lb, hb in zip(o, lo, hi):
            for ot, lt, ht in zip(ob, lb, hb):
                for oh, lh, hh in zip(ot, lt, ht):
                    for x, a, b in zip(oh, lh, hh):
                        assert a - tol * abs(a) <= x <= b + tol * abs(b), (x, a, b)


def mpmath_tensor(x, shape):
    from rnnconf.oracles.base import mp_to_tensor

    return mp_to_tensor(x, shape)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 20), spread=st.sampled_from(SPREADS))
def test_precision_doubling(seed, T, spread):
    """dps 30 and dps 60 agree to ~10^-27 relative to the magnitude shadow (values, RNN path and u)."""
    q, k, v = _inputs(seed, 1, T, 2, 3, 2, spread)
    lo, hi = aaren_oracle(q, k, v, dps=30), aaren_oracle(q, k, v, dps=60)
    tol = mpmath.mpf(10) ** -27
    _close(lo.exact["o"], hi.exact["o"], tol, hi.mag["o"].tolist())
    _close(lo.aux["rnn_o"], hi.aux["rnn_o"], tol, hi.mag["o"].tolist())
    for a, b in zip(lo.aux["u_exact"][0], hi.aux["u_exact"][0]):
        for x, y in zip(a, b):
            assert abs(x - y) <= tol * y


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 24), spread=st.sampled_from(SPREADS))
def test_prefix_counts(seed, T, spread):
    """1 ≤ u_k ≤ k exactly, u_k = Σ_{j≤k} e^{s_j − max_{i≤k} s_i}, m_k = max_{j≤k} s_j (recomputed at dps 50)."""
    q, k, v = _inputs(seed, 2, T, 2, 3, 1, spread)
    r = aaren_oracle(q, k, v, dps=30)
    with mpmath.workdps(50):
        for b in range(2):
            for h in range(2):
                s = r.aux["s_exact"][b][h]
                for kk in range(1, T + 1):
                    u = r.aux["u_exact"][b][h][kk - 1]
                    assert 1 <= u <= kk
                    m = max(s[:kk])
                    assert r.aux["m_exact"][b][h][kk - 1] == m
                    direct = mpmath.fsum(mpmath.exp(x - m) for x in s[:kk])
                    assert abs(u - direct) <= mpmath.mpf(10) ** -27 * kk


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 16), spread=st.sampled_from(SPREADS))
def test_is_fox_with_zero_gate_and_fixed_query(seed, T, spread):
    """aaren(q, k, v) = forgetting-attention(q_t ≡ q, k, v, g ≡ 0): the FoX oracle on the expanded query."""
    q, k, v = _inputs(seed, 1, T, 2, 3, 2, spread)
    fox = attention_oracle(q[:, None].expand(1, T, 2, 3).contiguous(), k, v, torch.zeros(1, T, 2, dtype=torch.float64))
    r = aaren_oracle(q, k, v)
    _close(fox.exact["o"], r.exact["o"], mpmath.mpf(10) ** -27, r.mag["o"].tolist())
    assert torch.equal(fox.cond["o"], r.cond["o"]) and torch.equal(fox.mag["o"], r.mag["o"])  # same ingredients


def _mp_summary(draw_m, u, w):
    return (draw_m, mpmath.mpf(u), [mpmath.mpf(x) for x in w])


summary = st.one_of(
    st.just(None),  # the identity
    st.tuples(st.one_of(st.floats(-50, 50), st.sampled_from([1e4, -1e4, 0.0])), st.floats(1, 64),
              st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=2)),
)


def _to_mp(p):
    if p is None:
        return mp_identity(2)
    return _mp_summary(mpmath.mpf(p[0]), p[1], p[2])


def _phi(p, ref):
    """Φ(m, u, w) = (u e^{m − ref}, w e^{m − ref}): turns the combine into addition (ref: a common shift)."""
    m, u, w = p
    f = mpmath.mpf(0) if m == mpmath.ninf else mpmath.exp(m - ref)
    return [u * f] + [x * f for x in w]


@settings(max_examples=60, derandomize=True, deadline=None)
@given(a=summary, b=summary, c=summary)
def test_combine_exact_algebra(a, b, c):
    """In mpmath (dps 50): (a∘b)∘c = a∘(b∘c), a∘b = b∘a, identity (−∞, 0, 0) on either side, identity∘identity the
    identity (never NaN), and Φ(a∘b) = Φ(a) + Φ(b) — with gaps up to 2·10⁴."""
    with mpmath.workdps(50):
        A, B, C = _to_mp(a), _to_mp(b), _to_mp(c)
        e = mp_identity(2)
        left, right = mp_combine(mp_combine(A, B), C), mp_combine(A, mp_combine(B, C))
        ab, ba = mp_combine(A, B), mp_combine(B, A)
        tol = mpmath.mpf(10) ** -45
        for x, y in ((left, right), (ab, ba)):
            assert x[0] == y[0]
            for p, q_ in zip([x[1]] + x[2], [y[1]] + y[2]):
                assert abs(p - q_) <= tol * (abs(x[1]) * 1e3 + 1e-300)
        for p in (A, B, C):
            assert mp_combine(e, p) == p and mp_combine(p, e) == p
        ee = mp_combine(e, e)
        assert ee[0] == mpmath.ninf and ee[1] == 0 and all(x == 0 for x in ee[2])
        assert not any(mpmath.isnan(x) for x in [left[1], *left[2], right[1], *right[2]])
        ref = max(A[0], B[0])
        if ref != mpmath.ninf:
            lhs, ra, rb = _phi(ab, ref), _phi(A, ref), _phi(B, ref)
            for x, y, z in zip(lhs, ra, rb):
                assert abs(x - (y + z)) <= tol * (abs(y) + abs(z) + 1e-300)


def test_rnn_path_is_left_fold_of_leaves():
    """rnn_path folds leaves (s, 1, v) from the identity: T = 0 gives nothing, one leaf gives itself."""
    with mpmath.workdps(30):
        assert rnn_path([], []) == []
        s, v = mpmath.mpf("0.25"), [mpmath.mpf(2)]
        assert rnn_path([s], [v]) == [(s, 1, v)]


def test_empty_sequence():
    """T = 0 (a varlen sequence of length 0): empty outputs, no error."""
    q, k, v = _inputs(0, 1, 0, 2, 3, 2, 1.0)
    r = aaren_oracle(q, k, v)
    assert r.values["o"].shape == (1, 0, 2, 2) and r.aux["u"].shape == (1, 2, 0)


def test_rnn_scores_match_attention_scores():
    """Both paths score with s = 1/√K exactly (mpmath), or the given scale."""
    q, k, v = _inputs(3, 1, 4, 1, 4, 1, 1.0)
    for scale in (None, 0.3):
        rnn = aaren_rnn(q, k, v, scale=scale, dps=40)
        with mpmath.workdps(40):
            sc = 1 / mpmath.sqrt(4) if scale is None else mpmath.mpf(scale)
            for j in range(4):
                want = sc * mpmath.fdot([mpmath.mpf(float(x)) for x in q[0, 0]],
                                        [mpmath.mpf(float(x)) for x in k[0, j, 0]])
                assert abs(rnn["s"][0][0][j] - want) <= mpmath.mpf(10) ** -38 * (abs(want) + 1)
    assert math.isfinite(float(aaren_oracle(q, k, v, scale=0.3).values["o"].sum()))
