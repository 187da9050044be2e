"""Properties of ``aaren`` (attention as a many-to-one RNN, arXiv 2405.13956) that concern its (m, u, w) combine.

* ``aaren-combine``: ``target.combine`` is the spec's combine — checked against the exact mpmath combine of the same
  dtype inputs, and associative and commutative: every bracketing and order agrees with the exact merge within
  :func:`rnnconf.spec.aaren.fold_bound` (m, a max, bitwise); the identity (−∞, 0, 0) is exact on either side and
  identity ∘ identity is the identity, never NaN.  Draws include identities, ties and score gaps up to ~2·10⁴.
* ``aaren-prefix-count``: 1 ≤ u_k ≤ k, on the oracle's exact u and on ``target.combine`` run as the RNN's left fold in
  the dtype (leaves (s_j, 1, v_j) with the oracle's scores rounded to the dtype), where û_k must also match the exact
  u_k of those leaves within :func:`~rnnconf.spec.aaren.fold_bound`.

The generic ``combine-associative`` property is for the diagonal (a, b) combine only (it concerns the diagonal
family); aaren's (m, u, w) combine is judged here.  Both concern targets that expose ``combine``.
"""
from __future__ import annotations

import math

import mpmath
import torch
from hypothesis import strategies as st

from ..oracles.aaren import mp_combine, rnn_path
from ..spec.aaren import fold_bound
from ..spec.domains import Domain
from . import strategies as S
from .calling import PropertyFailure
from .context import Ctx
from .registry import Property, register

_DPS = 40


def _aaren_with_combine(spec, target):
    return None if target.combine is not None else "target exposes no combine operator"


_M = Domain("m", center=0.0, scale=10.0, edges=(0.0, 1e4, -1e4, 30.0, -30.0, 1.0),
            doc="summary maxima (scores): ties, moderate and ~2·10⁴ gaps")
_U = Domain("u", lo=1.0, hi=64.0, law="uniform", edges=(1.0, 64.0), doc="prefix counts of a non-empty set")
_W = Domain("w", center=0.0, scale=1.0, edges=(0.0, 1e3, -1e3), doc="weighted value sums")


def _draw_summary(ctx: Ctx, name: str, n: int, V: int) -> tuple:
    """(m, u, w) float64 values representable in the dtype; a labelled fraction of entries is the identity."""
    m = S.draw_tensor(ctx.data, f"{name}.m", _M, (n,), ctx.dtype)
    u = S.draw_tensor(ctx.data, f"{name}.u", _U, (n,), ctx.dtype)
    w = S.draw_tensor(ctx.data, f"{name}.w", _W, (n, V), ctx.dtype)
    frac = ctx.draw(st.sampled_from(S.EDGE_FRACTIONS), f"{name}.identity_fraction")
    seed = ctx.draw(st.integers(0, 2**31 - 1), f"{name}.identity_seed")
    ident = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) < frac
    m = torch.where(ident, torch.tensor(-math.inf, dtype=torch.float64), m)
    return m, torch.where(ident, torch.zeros_like(u), u), torch.where(ident[:, None], torch.zeros_like(w), w)


def _to(ctx: Ctx, p):
    return tuple(x.to(device=ctx.profile.device, dtype=ctx.dtype) for x in p)


def _back(p):
    return tuple(x.detach().to("cpu", torch.float64) for x in p)


def _exact_merge(parts: list) -> tuple:
    """Exact merge of float64 summaries (any bracketing gives it): m = max m_i, c = Σ c_i e^{m_i − m}, per element, as
    mpf (m: float)."""
    n, V = parts[0][2].shape
    ms, us, ws = [], [], []
    with mpmath.workdps(_DPS):
        for i in range(n):
            acc = (mpmath.ninf, mpmath.mpf(0), [mpmath.mpf(0)] * V)
            for m, u, w in parts:
                mi = mpmath.ninf if math.isinf(float(m[i])) else mpmath.mpf(float(m[i]))
                acc = mp_combine(acc, (mi, mpmath.mpf(float(u[i])), [mpmath.mpf(float(x)) for x in w[i]]))
            ms.append(acc[0])
            us.append(acc[1])
            ws.append(acc[2])
    return ms, us, ws


def _err(got: torch.Tensor, exact: list) -> torch.Tensor:
    """|got − exact| evaluated in mpmath (float64 result), elementwise over a 1-D or 2-D ``got``."""
    with mpmath.workdps(_DPS):
        if got.dim() == 1:
            return torch.tensor([float(abs(mpmath.mpf(float(g)) - e)) for g, e in zip(got.tolist(), exact)],
                                dtype=torch.float64)
        return torch.tensor([[float(abs(mpmath.mpf(float(g)) - e)) for g, e in zip(gr, er)]
                             for gr, er in zip(got.tolist(), exact)], dtype=torch.float64).reshape(got.shape)


def _nan_free(what: str, p, desc: str) -> None:
    for name, x in zip("muw", p):
        if torch.isnan(x).any():
            pos = tuple(int(i) for i in torch.isnan(x).nonzero()[0])
            raise PropertyFailure(f"{what}: {name}{list(pos)} is NaN [{desc}]", observed=float("inf"), bound=0.0)


def _judge(ctx: Ctx, what: str, got, parts: list, depths: list, exact, desc: str) -> float:
    """``got`` (float64 of a dtype result) against the exact merge of ``parts``: m bitwise, u and w within
    fold_bound with the given per-part depths."""
    _nan_free(what, got, desc)
    m_ex = torch.tensor([float(x) for x in exact[0]], dtype=torch.float64)
    same = (got[0] == m_ex) | (torch.isneginf(got[0]) & torch.isneginf(m_ex))
    if not bool(same.all()):
        i = int((~same).nonzero()[0])
        raise PropertyFailure(f"{what}: m[{i}] = {got[0][i].item()!r}, but the max of the operands is "
                              f"{m_ex[i].item()!r} (m is a max: exact) [{desc}]")
    mp = torch.stack([p[0] for p in parts])
    d = torch.tensor(depths, dtype=torch.float64)[:, None]
    worst = 0.0
    for k, name in ((1, "u"), (2, "w")):
        bound = fold_bound(mp, torch.stack([p[k] for p in parts]), d, m_ex, ctx.dtype)
        err = _err(got[k], exact[k])
        ratio = torch.where(err == 0, torch.zeros_like(err), err / bound)
        if not bool((ratio <= 1).all()):
            pos = tuple(int(i) for i in (~(ratio <= 1)).nonzero()[0])
            want = float(exact[k][pos[0]] if k == 1 else exact[k][pos[0]][pos[1]])
            raise PropertyFailure(
                f"{what}: {name}{list(pos)} = {got[k][pos].item():.9g}, exact {want:.9g}; |err| = "
                f"{err[pos].item():.3g} > bound {bound[pos].item():.3g} ({ratio[pos].item():.3g}× the bound; "
                f"{str(ctx.dtype).replace('torch.', '')}) [{desc}]", observed=float(err[pos]), bound=float(bound[pos]))
        worst = max(worst, float(ratio.max()) if ratio.numel() else 0.0)
    return worst


# ---- aaren-combine ---------------------------------------------------------------------------------------------
def _combine_draw(ctx: Ctx):
    n = ctx.draw(st.integers(1, 32), "n")
    V = ctx.draw(st.integers(1, 4), "V")
    return {"dims": {"n": n, "V": V}, "p": [_draw_summary(ctx, f"p{i}", n, V) for i in range(3)]}


def _combine_check(ctx: Ctx, ex):
    comb = ctx.target.combine
    desc = f"{ctx.target.id}.combine"
    p = ex["p"]
    a, b, c = (_to(ctx, x) for x in p)
    worst = 0.0
    # 1. it is the spec's combine, in both orders (commutativity), against the exact merge
    ex_ab = _exact_merge([p[0], p[1]])
    worst = max(worst, _judge(ctx, "p∘q (spec: max, u₁e^{m₁−m} + u₂e^{m₂−m}, w alike)", _back(comb(a, b)),
                              [p[0], p[1]], [1, 1], ex_ab, desc))
    worst = max(worst, _judge(ctx, "q∘p (commutativity)", _back(comb(b, a)), [p[1], p[0]], [1, 1], ex_ab, desc))
    # 2. associativity: both bracketings against the exact merge of all three
    ex_abc = _exact_merge(p)
    worst = max(worst, _judge(ctx, "(p∘q)∘r", _back(comb(comb(a, b), c)), p, [2, 2, 1], ex_abc, desc))
    worst = max(worst, _judge(ctx, "p∘(q∘r)", _back(comb(a, comb(b, c))), p, [1, 2, 2], ex_abc, desc))
    worst = max(worst, _judge(ctx, "(r∘p)∘q", _back(comb(comb(c, a), b)), [p[2], p[0], p[1]], [2, 2, 1], ex_abc,
                              desc))
    # 3. the identity: exact on either side, identity ∘ identity = identity, never NaN
    n, V = ex["dims"]["n"], ex["dims"]["V"]
    e = (torch.full((n,), -math.inf, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
         torch.zeros(n, V, dtype=torch.float64))
    et = _to(ctx, e)
    for what, got, want in (("e∘p", comb(et, a), p[0]), ("p∘e", comb(a, et), p[0]), ("e∘e", comb(et, et), e)):
        got = _back(got)
        _nan_free(f"{what} (identity e = (−∞, 0, 0))", got, desc)
        for name, g, w in zip("muw", got, want):
            if not torch.equal(g, w):
                pos = tuple(int(i) for i in (g != w).nonzero()[0])
                raise PropertyFailure(f"{what} (identity e = (−∞, 0, 0)): {name}{list(pos)} = {g[pos].item()!r}, "
                                      f"expected exactly {w[pos].item()!r} [{desc}]")
    return worst


register(Property(
    "aaren-combine", "the target's combine is the spec's (m, u, w) combine, associative and commutative within the "
    "derived fold bound (m exact), with an exact, NaN-free identity (−∞, 0, 0)",
    _combine_draw, _combine_check, all_dtypes=True, applies=_aaren_with_combine,
    invariant=True))


# ---- aaren-prefix-count ----------------------------------------------------------------------------------------
def _count_draw(ctx: Ctx):
    return ctx.draw_inputs(ctx.draw_dims())


def _count_check(ctx: Ctx, ex):
    res = ctx.oracle(ex["inputs"])
    u_ex = res.aux["u_exact"]  # [B][H][T] mpf
    B, H = len(u_ex), len(u_ex[0]) if u_ex else 0
    for b in range(B):
        for h in range(H):
            for k, u in enumerate(u_ex[b][h], start=1):
                if not 1 <= u <= k:
                    raise PropertyFailure(f"oracle: exact u_{k}[b={b}, h={h}] = {mpmath.nstr(u, 20)} ∉ [1, {k}] "
                                          f"(a defect of the oracle or of the spec's statement)")
    s = S.round_to(res.aux["s"], ctx.dtype)  # [B, H, T] leaves' scores as the dtype holds them
    v = ex["inputs"]["v"].transpose(1, 2)  # [B, H, T, V], already dtype values
    T = s.shape[-1]
    if not T:
        return 0.0
    # exact u_k of the rounded leaves (the fold's own exact value)
    u_want = torch.zeros(B, H, T, dtype=torch.float64)
    with mpmath.workdps(_DPS):
        for b in range(B):
            for h in range(H):
                summ = rnn_path([mpmath.mpf(x) for x in s[b, h].tolist()], [[mpmath.mpf(0)]] * T)
                u_want[b, h] = torch.tensor([float(x[1]) for x in summ], dtype=torch.float64)
    # the left fold in the dtype with the target's combine
    comb = ctx.target.combine
    Vd = v.shape[-1]
    acc = _to(ctx, (torch.full((B, H), -math.inf, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64),
                    torch.zeros(B, H, Vd, dtype=torch.float64)))
    u_got = []
    for j in range(T):
        acc = comb(acc, _to(ctx, (s[..., j], torch.ones(B, H, dtype=torch.float64), v[..., j, :])))
        u_got.append(acc[1].detach().to("cpu", torch.float64))
    u_got = torch.stack(u_got, -1)
    # bound: leaf i reaches prefix j through j − i + 1 combines (the first through the identity's, exactly)
    i = torch.arange(T)
    live = i[:, None] <= i[None, :]  # [i, j]
    m_parts = torch.where(live[:, None, None, :], s.permute(2, 0, 1)[..., None], torch.tensor(-math.inf,
                                                                                          dtype=torch.float64))
    m_out = torch.cummax(s, -1).values
    depth = (i[None, :] - i[:, None] + 1).clamp(min=0).double()[:, None, None, :]
    bound = fold_bound(m_parts, torch.ones_like(m_parts), depth, m_out, ctx.dtype)  # [B, H, T]
    desc = f"{ctx.target.id}.combine as a left fold"
    kk = torch.arange(1, T + 1, dtype=torch.float64)
    over = torch.maximum(1 - u_got, u_got - kk)
    bad = ~(over <= bound)
    if bad.any():
        pos = tuple(int(x) for x in bad.nonzero()[0])
        raise PropertyFailure(f"û_{pos[-1] + 1}[b={pos[0]}, h={pos[1]}] = {u_got[pos].item():.9g} ∉ "
                              f"[1, {pos[-1] + 1}] beyond the bound {bound[pos].item():.3g} [{desc}]",
                              observed=float(over[pos]), bound=float(bound[pos]))
    err = (u_got - u_want).abs()
    ratio = torch.where(err == 0, torch.zeros_like(err), err / bound)
    if not bool((ratio <= 1).all()):
        pos = tuple(int(x) for x in (~(ratio <= 1)).nonzero()[0])
        raise PropertyFailure(f"û_{pos[-1] + 1}[b={pos[0]}, h={pos[1]}] = {u_got[pos].item():.9g}, exact "
                              f"{u_want[pos].item():.9g}; |err| = {err[pos].item():.3g} > bound "
                              f"{bound[pos].item():.3g} ({str(ctx.dtype).replace('torch.', '')}) [{desc}]",
                              observed=float(err[pos]), bound=float(bound[pos]))
    return float(ratio.max())


register(Property(
    "aaren-prefix-count", "1 ≤ u_k ≤ k: exactly on the oracle's u, and within the derived fold bound for the target's "
    "combine run as the RNN's left fold in the dtype (which must also match the exact u_k)",
    _count_draw, _count_check, all_dtypes=True, applies=_aaren_with_combine,
    invariant=True))
