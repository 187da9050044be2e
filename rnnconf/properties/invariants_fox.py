"""Invariant properties of the Forgetting Transformer (``forgetting-attention``) and of its Adaptive Computation
Pruning (``forgetting-attention-acp``), each judged against the mpmath oracle or as an exact structural fact."""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from ..oracles import DEFAULT_DPS, get_oracle
from ..oracles.forgetting_attention import acp_exponent_factor
from ..spec.errors import unit_roundoff
from ..spec.softmax import default_scale
from . import strategies as S
from .calling import PropertyFailure, call_target
from .context import Ctx
from .registry import Property, register


# ---- FoX ---------------------------------------------------------------------------------------------------------
def _zero_gate_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims())
    ex["inputs"]["g"] = torch.zeros_like(ex["inputs"]["g"])
    return ex


def _zero_gate_check(ctx: Ctx, ex):
    """g ≡ 0 ⇒ plain causal softmax attention, judged against the oracle's no-decay path (g=None: no D at all)."""
    from ..oracles.forgetting_attention import attention_oracle

    i = ex["inputs"]
    call = ctx.call(i)
    res = attention_oracle(i["q"], i["k"], i["v"], None, dps=DEFAULT_DPS)
    return ctx.expect_close("o with g ≡ 0 (must be causal softmax attention)", call.outputs["o"], res.values["o"],
                            ctx.bound(res, "o"), call.desc, source="mpmath causal softmax, no decay")


register(Property(
    "fox-zero-gate-is-softmax", "g ≡ 0 gives causal softmax attention (an oracle path with no decay term)",
    _zero_gate_draw, _zero_gate_check, invariant=True))


def _strong_decay_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims())
    ex["inputs"]["g"] = torch.full_like(ex["inputs"]["g"], ctx.spec.arg("g").domain.lo)
    return ex


def _strong_decay_check(ctx: Ctx, ex):
    """g ≡ −1e4 ⇒ o_i = v_i: every off-diagonal weight is exp(−1e4·(i−j) + score gap) = 0 in every float format,
    judged on rows whose score gaps max_j |s_ij − s_ii| stay below 1e4 − 800 (else the scores, not the gate, win)."""
    i = ex["inputs"]
    q, k, v = i["q"], i["k"], i["v"]
    s = default_scale(q.shape[-1])
    sc = s * torch.einsum("bihk,bjhk->bhij", q, k)
    gap = (sc - torch.diagonal(sc, dim1=-2, dim2=-1)[..., :, None]).abs()
    causal = torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).tril()
    ok_rows = torch.where(causal, gap, torch.zeros_like(gap)).amax(-1) < 1e4 - 800  # [B, H, T]
    call = ctx.call(i)
    o = call.outputs["o"]
    bound = unit_roundoff(ctx.dtype) * ctx.spec.error_model.c_out * v.abs() + torch.finfo(ctx.dtype).tiny
    judged = ok_rows.transpose(1, 2)[..., None].expand_as(o)
    want = torch.where(judged, v, o)
    return ctx.expect_close("o with g ≡ −1e4 (must equal v_i: attends only to j = i)", o, want, bound, call.desc,
                            source="o_i = v_i")


register(Property(
    "fox-strong-decay-is-identity", "g ≡ −1e4 attends only to j = i: o_i = v_i",
    _strong_decay_draw, _strong_decay_check, invariant=True))


def _first_gate_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (2, None)}))
    ex["g0"] = ctx.draw(st.sampled_from([ctx.spec.arg("g").domain.lo, -1e3, -30.0, 0.0]), "g_0")
    return ex


def _first_gate_check(ctx: Ctx, ex):
    """g_0 shifts every c_i = Σ_{l≤i} g_l by one constant, which cancels in each softmax row: with any g_0 the
    output is the oracle's output for the original g_0.  A form that differences a low-precision cumsum loses
    ≈ u·|g_0| in every exponent here — within its bound only if its traits declare that cumsum."""
    orig = ex["inputs"]
    mod = dict(orig)
    g = orig["g"].clone()
    g[:, 0] = ex["g0"]
    mod["g"] = g
    res_orig = ctx.oracle(orig)
    res_mod = ctx.oracle(mod)  # same values (g_0 is irrelevant); its log mass includes |g_0|: what the form saw
    same = (res_orig.values["o"] - res_mod.values["o"]).abs() <= 1e-20 * (1 + res_orig.mag["o"])
    if not bool(same.all()):
        raise PropertyFailure("oracle defect: changing g_0 changed the oracle's output")
    call = ctx.call(mod)
    return ctx.expect_close(f"o with g_0 = {ex['g0']:g} (must equal the output for the original g_0)",
                            call.outputs["o"], res_orig.values["o"], ctx.bound(res_mod, "o"), call.desc)


register(Property(
    "fox-first-gate-irrelevant", "g_0 cancels in every row: any g_0 (e.g. −1e4) gives the same output",
    _first_gate_draw, _first_gate_check, invariant=True))


# ---- ACP ---------------------------------------------------------------------------------------------------------
def acp_draw(ctx: Ctx, positive_gate: bool = False) -> dict:
    """ACP examples: random inputs, a constant decay slope, or the adversarial 'cliff' that makes the guarantee
    tight — aligned queries and keys before a gate cliff at t*, anti-aligned keys from t* on, and a cliff of
    γ = 2U − ln ε + θ·ln N: weights just past the threshold are then within a factor N^θ of ε/N each, so a threshold
    without ln N, or pruning judged at the wrong tile corner, puts more than ε on pruned tiles."""
    pattern = ctx.draw(st.sampled_from(["cliff", "random", "slope"]), "acp.pattern")
    # structured patterns need ≥ 3 query blocks of 16 for a tile strictly left of the diagonal to exist
    dims = ctx.draw_dims(bounds={"T": (2, None) if pattern == "random" else (min(33, ctx.profile.cap("T", 33,
                                                                                  "attention")), None)})
    ex = ctx.draw_inputs(dims)
    ex["log_eps"] = ctx.draw(st.sampled_from([ctx.spec.extra["log_eps"], -4.0]), "log_eps")
    ex["pattern"] = pattern
    i = ex["inputs"]
    B, T, H, K = i["q"].shape
    if pattern == "slope":
        gam = ctx.draw(st.sampled_from([0.1, 0.5, 1.0, 3.0, 10.0]), "acp.slope")
        i["g"] = torch.full_like(i["g"], -gam)
    elif pattern == "cliff":
        # t* on a tile boundary makes the first row after the cliff a tile's top row, where the rule is tight
        t_star = ctx.draw(st.one_of(st.sampled_from([t for t in (16, 8, 32, 24, 4) if t < T]),
                                    st.integers(1, T - 1)), "acp.t_star")
        theta = ctx.draw(st.sampled_from([0.5, 1.5, 0.25, 3.0]), "acp.theta")  # > 1: pruning is legitimate
        a = 2.0
        e0 = torch.zeros(K, dtype=torch.float64)
        e0[0] = a
        i["q"] = e0.expand(B, T, H, K).clone()
        sign = torch.where(torch.arange(T) < t_star, 1.0, -1.0).double().view(1, T, 1, 1)
        i["k"] = (e0 * sign).expand(B, T, H, K).clone()
        U = default_scale(K) * a * a
        g = torch.zeros_like(i["g"])
        g[:, t_star] = -(2 * U - ex["log_eps"] + theta * math.log(T))
        i["g"] = S.round_to(g, ctx.dtype)
        ex["t_star"], ex["theta"] = t_star, theta
    if positive_gate:
        tp = ctx.draw(st.integers(0, T - 1), "acp.positive_t")
        i["g"][:, tp] = ctx.draw(st.sampled_from([0.5, 5.0, 50.0]), "acp.positive_g")
    return ex


def _acp_call(ctx: Ctx, ex, log_eps):
    """(Call, pruning info) — the info call must return the same output bitwise as the plain call."""
    kw = {"log_eps": log_eps}
    call = ctx.call(ex["inputs"], extra_kwargs=kw)
    ctx.expect_finite(call, ex["inputs"], res=lambda: _acp_oracle(ctx, {**ex, "log_eps": log_eps}))
    raw = call_target(ctx.spec, ctx.target, ex["inputs"], ctx.dtype, ctx.profile.device,
                      extra_kwargs={**kw, "return_pruning": True}, output_final_state=False, raw_return=True)
    if not (isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], dict) and "pruned" in raw[1]):
        raise PropertyFailure(f"{call.desc}: return_pruning=True must return (o, {{'pruned', 'block_m', "
                              f"'block_n'}}), got {type(raw).__name__}")
    o2 = raw[0].detach().cpu().double()
    ctx.expect_equal("o with return_pruning=True vs without", o2, call.outputs["o"], call.desc)
    info = raw[1]
    return call, {"pruned": info["pruned"].detach().cpu().bool(), "block_m": int(info["block_m"]),
                  "block_n": int(info["block_n"])}


def pruned_elements(info: dict, T: int) -> torch.Tensor:
    """Element mask [B, H, T, T] of the pruned tiles."""
    p = info["pruned"]
    m = p.repeat_interleave(info["block_m"], -2).repeat_interleave(info["block_n"], -1)
    return m[..., :T, :T]


def acp_mass_verdict(P: torch.Tensor, mask: torch.Tensor, limit: torch.Tensor, g: torch.Tensor):
    """('void', mass) when the precondition g ≤ 0 fails (the guarantee claims nothing), ('ok' | 'violated', worst
    mass/limit) otherwise.  P, mask [B, H, T, T]; limit [B, H, T] (ε·e^Δ)."""
    mass = (P * mask).sum(-1)
    if bool((g > 0).any()):
        return "void", mass
    ratio = mass / limit
    return ("violated" if bool((ratio >= 1).any()) else "ok"), ratio


def _acp_oracle(ctx: Ctx, ex):
    return get_oracle(ctx.spec.id)(**ex["inputs"], dps=DEFAULT_DPS, log_eps=ex["log_eps"])


def _mass_check(ctx: Ctx, ex):
    """Per query, the exact attention weight (oracle, 30 digits) on the tiles the target reports pruned is < ε,
    up to e^Δ with Δ the form's own rounding of the decision (see spec.forgetting_attention.acp_delta_error)."""
    call, info = _acp_call(ctx, ex, ex["log_eps"])
    res = _acp_oracle(ctx, ex)
    T = ex["dims"]["T"]
    mask = pruned_elements(info, T)
    if mask.shape != res.aux["P"].shape:
        raise PropertyFailure(f"pruning mask covers {tuple(mask.shape)} for attention {tuple(res.aux['P'].shape)} "
                              f"[{call.desc}]")
    fac = acp_exponent_factor(res, ctx.target.traits, ctx.dtype)[..., 0].transpose(1, 2)  # [B, H, T]
    limit = math.exp(ex["log_eps"]) * fac
    status, r = acp_mass_verdict(res.aux["P"], mask, limit, ex["inputs"]["g"])
    if status == "void":
        ctx.notes.append("precondition g ≤ 0 violated: the ε guarantee is void")
        return 0.0
    if status == "violated":
        pos = tuple(int(x) for x in (r == r.max()).nonzero()[0])
        b, h, t = pos
        raise PropertyFailure(
            f"pruned attention weight of query t={t} (b={b}, h={h}) is {float(r[pos] * limit[pos]):.6g} ≥ "
            f"ε·e^Δ = {float(limit[pos]):.6g} (ln ε = {ex['log_eps']}, {int(mask[b, h, t].sum())} pruned keys, "
            f"pattern {ex['pattern']}) [{call.desc}]", observed=float(r[pos] * limit[pos]), bound=float(limit[pos]))
    return float(r.max()) if r.numel() else 0.0


register(Property(
    "acp-pruned-mass", "the exact attention weight on pruned tiles is < ε per query (mpmath weights)",
    acp_draw, _mass_check, invariant=True))


def _acp_output_check(ctx: Ctx, ex):
    """|o − o_FoX| ≤ 2ε·max_{j≤i}|v_j| + the unpruned form's rounding bound, with the drawn ε."""
    call = ctx.call(ex["inputs"], extra_kwargs={"log_eps": ex["log_eps"]})
    res = _acp_oracle(ctx, ex)
    return ctx.expect_close(f"o (ln ε = {ex['log_eps']}, pattern {ex['pattern']})", call.outputs["o"],
                            res.values["o"], ctx.bound(res, "o"), call.desc,
                            source="mpmath FoX; bound + 2ε·max|v|")


register(Property(
    "acp-output-bound", "the pruned output is within 2ε·max|v| (+ rounding) of exact FoX attention",
    acp_draw, _acp_output_check, invariant=True))


def _shape_check(ctx: Ctx, ex):
    """Exact: the mask has one entry per (query block, key block); pruned tiles lie strictly left of the diagonal
    (every key of the tile precedes every query), form a prefix of each block row, and that prefix does not shrink
    from one query block to the next (c is non-increasing when g ≤ 0)."""
    call, info = _acp_call(ctx, ex, ex["log_eps"])
    p, bm, bn = info["pruned"], info["block_m"], info["block_n"]
    T = ex["dims"]["T"]
    B, H = ex["dims"]["B"], ex["dims"]["H"]
    want = (B, H, -(-T // bm), -(-T // bn))
    if tuple(p.shape) != want:
        raise PropertyFailure(f"pruning mask shape {tuple(p.shape)}, expected {want} for T={T}, tiles {bm}×{bn} "
                              f"[{call.desc}]")
    nQ, nK = want[2], want[3]
    qb = torch.arange(nQ)[:, None]
    kb = torch.arange(nK)[None]
    crosses = (kb + 1) * bn - 1 >= qb * bm  # the tile's last key is not before its first query
    if bool((p & crosses).any()):
        b, h, i, j = (int(x) for x in (p & crosses).nonzero()[0])
        raise PropertyFailure(f"tile (query block {i}, key block {j}) touching the diagonal was pruned (b={b}, "
                              f"h={h}) [{call.desc}]")
    if nK > 1 and bool((p[..., 1:] & ~p[..., :-1]).any()):
        b, h, i, j = (int(x) for x in (p[..., 1:] & ~p[..., :-1]).nonzero()[0])
        raise PropertyFailure(f"pruned tiles are not a prefix of block row {i}: key block {j + 1} pruned but "
                              f"{j} not (b={b}, h={h}) [{call.desc}]")
    start = p.sum(-1)  # the first unpruned key block of each query block
    if nQ > 1 and bool((start[..., 1:] < start[..., :-1]).any()):
        b, h, i = (int(x) for x in (start[..., 1:] < start[..., :-1]).nonzero()[0])
        raise PropertyFailure(f"pruned prefix shrinks from query block {i} ({int(start[b, h, i])} tiles) to "
                              f"{i + 1} ({int(start[b, h, i + 1])}) (b={b}, h={h}) [{call.desc}]")
    return 0.0


register(Property(
    "acp-tile-shape", "pruned tiles are block-aligned, strictly below the diagonal, a prefix of each block row, "
    "non-decreasing across query blocks", acp_draw, _shape_check, invariant=True))


def _eps_zero_check(ctx: Ctx, ex):
    """ln ε = −∞ ⇒ δ = −∞: nothing is pruned and the output is bitwise the unpruned kernel's."""
    from ..registry import get_form

    call, info = _acp_call(ctx, ex, -math.inf)
    if bool(info["pruned"].any()):
        raise PropertyFailure(f"ln ε = −∞ pruned {int(info['pruned'].sum())} tiles [{call.desc}]")
    twin = ctx.target.extras.get("unpruned")
    if twin is None:
        return 0.0
    from ..registry import get_spec

    twin_t = get_form(twin)
    other = call_target(get_spec(twin_t.spec_id), twin_t, ex["inputs"], ctx.dtype, ctx.profile.device,
                        output_final_state=False)
    ctx.expect_equal(f"o with ln ε = −∞ vs the unpruned {twin}", call.outputs["o"], other.outputs["o"], call.desc)
    return 0.0


register(Property(
    "acp-eps-zero", "ε → 0 (δ = −∞) prunes nothing and equals the unpruned kernel bitwise",
    acp_draw, _eps_zero_check, invariant=True))


def _precondition_check(ctx: Ctx, ex):
    """A log-gate > 0 breaks the monotonicity the tile rule relies on: the guarantee is void.  The property must
    notice (the mass verdict says 'void') and the target must still return a finite output of the right shape."""
    call, info = _acp_call(ctx, ex, ex["log_eps"])
    res = _acp_oracle(ctx, ex)
    mask = pruned_elements(info, ex["dims"]["T"])
    status, _ = acp_mass_verdict(res.aux["P"], mask, torch.full(res.aux["P"].shape[:-1], math.exp(ex["log_eps"])),
                                 ex["inputs"]["g"])
    if status != "void":
        raise PropertyFailure("rnnconf defect: a log-gate > 0 was drawn but the precondition check did not notice")
    o = call.outputs["o"]
    fin = torch.isfinite(res.values["o"]) & ~torch.isfinite(o)
    if bool(fin.any()):
        raise PropertyFailure(f"non-finite output where exact attention is finite, with a log-gate > 0 "
                              f"[{call.desc}]")
    ctx.notes.append("precondition violated (g > 0): ε guarantee not claimed")
    return 0.0


register(Property(
    "acp-precondition", "with a log-gate > 0 the ε guarantee is void: noticed, not failed, and the output stays "
    "finite", lambda ctx: acp_draw(ctx, positive_gate=True), _precondition_check, invariant=True))
