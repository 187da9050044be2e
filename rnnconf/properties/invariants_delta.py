"""Invariant properties of the delta-rule family, observed through a target's outputs (the spectral facts of the
transitions themselves are checked on generated inputs in tests/spec/test_delta_invariants.py)."""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from ..spec.delta import QK_L2NORM
from ..spec.domains import Domain
from ..spec.targets import QK_L2NORM as QK_L2NORM_FEATURE
from . import strategies as S
from .calling import PropertyFailure
from .context import Ctx
from .registry import PROPERTIES, Property, register

_STATE = frozenset({"initial_state", "final_state"})


def _zero_write_draw(orthogonal: bool):
    def draw(ctx: Ctx):
        ex = ctx.draw_inputs(ctx.draw_dims(), with_state=True)
        i = ex["inputs"]
        i["v"] = torch.zeros_like(i["v"])
        if orthogonal:
            i["beta"] = torch.full_like(i["beta"], 2.0)
            if "g" in i:
                i["g"] = torch.zeros_like(i["g"])
        return ex

    return draw


def _norm_check(orthogonal: bool):
    def check(ctx: Ctx, ex):
        """v ≡ 0 ⇒ S_T = (Π α_t A_t) S_0 with ‖A_t‖₂ = max(1, |1 − β‖k‖²|): ‖S_T‖_F ≤ Π α_t ρ_t ‖S_0‖_F; with β ≡ 2
        and g ≡ 0 every A_t is a Householder reflection (orthogonal) and ‖S_T‖_F = ‖S_0‖_F (ρ_t from the exact,
        rounded keys, so ‖k‖² = 1 ± u counts).  Judged within the Frobenius norm of the elementwise error bound."""
        i = ex["inputs"]
        call = ctx.call(i, ex["initial_state"])
        res = ctx.oracle(i, ex["initial_state"])
        ctx.expect_finite(call, i, ex["initial_state"], res=res)  # only ‖S_T‖ is judged below
        S0 = ex["initial_state"].norm(dim=(-2, -1))
        kn2 = (i["k"] ** 2).sum(-1)
        rho = torch.maximum(torch.ones_like(kn2), (1 - i["beta"] * kn2).abs())
        lim_hi = S0 * rho.prod(1)  # [B, H] (over every sub-step for delta-product)
        if "g" in i:
            lim_hi = lim_hi * torch.exp(i["g"]).prod(1)
        got = call.outputs["final_state"].norm(dim=(-2, -1))
        slack = ctx.bound(res, "final_state").norm(dim=(-2, -1))
        excess = got - lim_hi - slack
        if orthogonal:
            rho_lo = torch.minimum(torch.ones_like(kn2), (1 - i["beta"] * kn2).abs()).prod(1)
            excess = torch.maximum(excess, S0 * rho_lo - slack - got)
        bad = ~(excess <= 0)
        if bool(bad.any()):
            b, h = (int(x) for x in bad.nonzero()[0])
            what = "preserve" if orthogonal else "not increase"
            raise PropertyFailure(f"‖S_T‖_F = {float(got[b, h]):.9g} vs ‖S_0‖_F = {float(S0[b, h]):.9g} (b={b}, h={h}):"
                                  f" with v ≡ 0{' and β ≡ 2' if orthogonal else ''} the transitions must {what} the "
                                  f"norm (slack {float(slack[b, h]):.3g}) [{call.desc}]",
                                  observed=float(got[b, h]), bound=float(lim_hi[b, h] + slack[b, h]))
        return float(((got - lim_hi).clamp(min=0) / slack.clamp(min=1e-300)).max()) if got.numel() else 0.0

    return check


register(Property(
    "delta-nonexpansive", "v ≡ 0: ‖S_T‖_F ≤ Π α_t ‖A_t‖₂ ‖S_0‖_F (≤ ‖S_0‖_F for unit keys, β ∈ [0, 2])",
    _zero_write_draw(False), _norm_check(False), requires=_STATE, invariant=True))
register(Property(
    "delta-orthogonal", "v ≡ 0, β ≡ 2, g ≡ 0: Householder transitions, ‖S_T‖_F = ‖S_0‖_F",
    _zero_write_draw(True), _norm_check(True), requires=_STATE, invariant=True))


def _retrieval_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims())
    i = ex["inputs"]
    T = ex["dims"]["T"]
    t = ctx.draw(st.integers(0, T - 1), "retrieval t")
    n = int(i.get("num_householder", 1))
    r = t * n + n - 1  # the token's last (sub-)step: the state the query reads
    K = i["k"].shape[-1]
    i["beta"][:, r] = 1.0
    i["q"][:, t] = i["k"][:, r] * math.sqrt(K)  # o_t = S_tᵀ (s·q_t) = S_tᵀ k  (s = 1/√K, exact for K = 4^m)
    ex["t"], ex["r"] = t, r
    return ex


def _retrieval_check(ctx: Ctx, ex):
    """β = 1, unit k at token t's last (sub-)step: S_t = (I − k kᵀ)·(…) + k vᵀ ⇒ S_tᵀ k = v — the value just
    written is read back.  Judged against v with the oracle's bound plus the exact deviation |oracle − v| (keys are
    unit only up to their rounding, and s·√K is 1 only up to rounding)."""
    i, t = ex["inputs"], ex["t"]
    call = ctx.call(i, ex["initial_state"])
    res = ctx.oracle(i, ex["initial_state"])
    ctx.expect_finite(call, i, ex["initial_state"], res=res)  # only o[:, t] is judged below
    want = i["v"][:, ex.get("r", t)]
    dev = (res.values["o"][:, t] - want).abs()
    return ctx.expect_close(f"o[:, {t}] with β_t = 1, q_t ∝ k_t (must read back v_t)", call.outputs["o"][:, t],
                            want, ctx.bound(res, "o")[:, t] + dev, call.desc, source="v_t (exact retrieval)")


register(Property(
    "delta-retrieval", "β_t = 1 with a unit key: S_tᵀ k_t = v_t (exact retrieval)", _retrieval_draw,
    _retrieval_check, invariant=True))


# ---- DeltaProduct's metamorphic relations: each judged against a *different* spec's oracle --------------------------
def _reduction(kind: str):
    """``interleaved``: the gated delta rule on the sequence interleaved to T·n_h steps (gate at sub-step 0, query at
    sub-step n_h − 1, zeros elsewhere), every n_h-th output — fla's reduction; ``nh1``: n_h = 1 is the gated delta
    rule itself; ``ungated``: g ≡ 0 is the (ungated) delta rule on the interleaved sequence."""
    def draw(ctx: Ctx):
        dims = ctx.draw_dims(fixed={"N": 1} if kind == "nh1" else None,
                             bounds=None if kind == "nh1" else {"N": (2, None)})
        ex = ctx.draw_inputs(dims)
        if kind == "ungated":
            ex["inputs"]["g"] = torch.zeros_like(ex["inputs"]["g"])
        return ex

    def check(ctx: Ctx, ex):
        from ..oracles import get_oracle
        from ..spec.delta_product import spread

        i = ex["inputs"]
        n = int(i["num_householder"])
        call = ctx.call(i, ex["initial_state"])
        own = ctx.oracle(i, ex["initial_state"])  # the bound: delta-product's error model for these inputs
        flat = {"q": spread(i["q"], n, n - 1), "k": i["k"], "v": i["v"], "beta": i["beta"]}
        other = "delta-rule" if kind == "ungated" else "gated-delta-rule"
        if other == "gated-delta-rule":
            flat["g"] = spread(i["g"], n, 0)
        ref = get_oracle(other)(**flat, initial_state=ex["initial_state"])
        worst = 0.0
        for name, obs in call.outputs.items():
            want = ref.values[name][:, n - 1::n] if name == "o" else ref.values[name]
            worst = max(worst, ctx.expect_close(f"{name} (n_h = {n})", obs, want, ctx.bound(own, name), call.desc,
                                                source=f"{other} oracle on the interleaved sequence"))
        return worst

    return draw, check


for _kind, _doc in (("interleaved", "equals the gated delta rule's oracle on the interleaved T·n_h sequence (gate at "
                                    "sub-step 0, query at the last), every n_h-th output (n_h ≥ 2)"),
                    ("nh1", "n_h = 1 equals the gated delta rule's oracle"),
                    ("ungated", "g ≡ 0 equals the delta rule's oracle on the interleaved sequence (n_h ≥ 2)")):
    register(Property(f"dp-{_kind}", _doc, *_reduction(_kind), invariant=True))


# ---- the normalisation mode (fla's use_qk_l2norm_in_kernel) ----------------------------------------------------------
_ROW_NORM = Domain("log10 ‖row‖", lo=-30.0, hi=3.0, center=0.0, scale=1.0, edges=(-30.0, -4.0, -3.0, 0.0, 3.0),
                   doc="decades of a raw q/k row's norm: 10^−30 (zero or underflowing), 10^−3 (‖x‖² = ε), 10^3")


def _raw_rows(ctx: Ctx, ex):
    """Raw q and k in ``ex``: each row of the spec's draw (unit keys, near-collinear ones included) scaled by 10^e
    with e drawn per row (labelled ``q.log10_norm``, ``k.log10_norm``) and rounded to the dtype."""
    i = ex["inputs"]
    for name in ("q", "k"):
        x = i[name]
        e = S.draw_tensor(ctx.data, f"{name}.log10_norm", _ROW_NORM, x.shape[:-1], torch.float64)
        i[name] = S.round_to(x * torch.pow(10.0, e)[..., None], ctx.dtype)
    return ex


def _l2norm_draw(ctx: Ctx):
    return _raw_rows(ctx, ctx.draw_inputs(ctx.draw_dims()))


def _l2norm_check(ctx: Ctx, ex):
    """The target with ``use_qk_l2norm_in_kernel=True`` on raw rows against the oracle that normalises the same rows
    in mpmath (x̂ = x/√(Σx² + ε)) and charges the normalisation's rounding (spec: NORMALISATION MODE)."""
    from ..oracles import DEFAULT_DPS, get_oracle

    i = ex["inputs"]
    call = ctx.call(i, ex["initial_state"], extra_kwargs={QK_L2NORM: True})
    res = get_oracle(ctx.spec.id)(**i, initial_state=ex["initial_state"], dps=DEFAULT_DPS,
                                  use_qk_l2norm_in_kernel=True)
    worst = 0.0
    for name, obs in call.outputs.items():
        worst = max(worst, ctx.expect_close(f"{name} ({QK_L2NORM}=True)", obs, res.values[name], ctx.bound(res, name),
                                            call.desc, source="oracle on the rows normalised in mpmath"))
    return worst


register(Property(
    "delta-qk-l2norm", f"{QK_L2NORM}=True on raw q, k rows (norms 10^−30 … 10^3) equals the oracle on "
    "q̂ = q/√(Σq² + ε), k̂ = k/√(Σk² + ε), ε = 1e-6", _l2norm_draw, _l2norm_check,
    requires=frozenset({QK_L2NORM_FEATURE}), invariant=True, all_dtypes=True))


def _l2norm_grad_draw(ctx: Ctx):
    """The generic gradients property's draw (inputs, upstream do and dht), with raw q, k rows."""
    return _raw_rows(ctx, PROPERTIES["gradients"].draw(ctx))


def _l2norm_grad_check(ctx: Ctx, ex):
    """Gradients of every differentiable input with ``use_qk_l2norm_in_kernel=True`` against float64 autograd of the
    spec's reference form in the same mode (normalising in torch), within the gradient model evaluated on the
    normalised rows with their error c_n and carried back through the normalisation
    (:func:`rnnconf.spec.delta.l2norm_grad_magnitudes`), the reference's own bound added."""
    from ..registry import get_form
    from ..spec.delta import l2norm_coefficient, l2norm_grad_magnitudes
    from .calling import call_target
    from .checks import _backward, both_grads

    spec, em = ctx.spec, ctx.spec.error_model
    ref = get_form(f"{spec.id}/{spec.extra['reference_form']}")
    names = [a.name for a in spec.inputs if a.differentiable]
    i, h0, kw = ex["inputs"], ex["initial_state"], {QK_L2NORM: True}
    calls = [call_target(spec, t, i, dt, dev, initial_state=h0, output_final_state=ex["dht"] is not None,
                         requires_grad=True, extra_kwargs=kw)
             for t, dt, dev in ((ctx.target, ctx.dtype, ctx.profile.device), (ref, torch.float64, "cpu"))]
    tg = _backward(calls[0], ex, names, ctx.dtype, ctx.profile.device)
    rg = _backward(calls[1], ex, names, torch.float64, "cpu")
    K = i["q"].shape[-1]
    steps = torch.tensor(float(ex["dims"]["T"] + 1), dtype=torch.float64)
    bounds = {}
    for t, dt in ((ctx.target, ctx.dtype), (ref, torch.float64)):
        c_n = l2norm_coefficient(K, dt, em.accumulate_u(dt, t.traits))
        mags = l2norm_grad_magnitudes(spec.extra["grad_magnitudes"], i, h0, ex["do"], ex["dht"], t.traits, c_n)
        for name, (m, c) in mags.items():
            bounds[name] = bounds.get(name, 0.0) + em.bound(steps, m, None, dt, t.traits, cond=c)
    worst = 0.0
    for name, g_obs in tg.items():
        g_ref = rg[name]
        if not both_grads(name, g_obs, g_ref, calls[0].desc):
            continue
        worst = max(worst, ctx.expect_close(f"d{name} ({QK_L2NORM}=True)", g_obs, g_ref, bounds[name],
                                            f"backward of {calls[0].desc}",
                                            source=f"float64 autograd of {ref.id} in the same mode"))
    return worst


register(Property(
    "delta-qk-l2norm-gradients", f"{QK_L2NORM}=True on raw rows: gradients of every input (through the "
    "normalisation) agree with float64 autograd of the reference form in the same mode within the derived bound",
    _l2norm_grad_draw, _l2norm_grad_check, requires=frozenset({QK_L2NORM_FEATURE, "grad"}), invariant=True,
    all_dtypes=True))
