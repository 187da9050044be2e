"""Boundary probes: one dim at a time taken to the sizes where a kernel's tiling changes, judged against the oracle.

Kernel bugs cluster where a block, tile or grid changes: past a channel block (BD = 64), a time tile (BT = 64, 128),
an index width (t > 256, keys past 512).  Every spec declares per dim its ``Dim.boundaries`` (2^k − 1, 2^k, 2^k + 1
up to the spec's range); ``boundary-probes`` takes each dim in turn to each boundary the profile probes
(:attr:`~rnnconf.properties.profiles.Profile.probe_caps`) while every other dim stays small (≤ :data:`SMALL`), and
judges every output and the final state against the oracle within the derived bound.

The cost grows with the probed dim only: the oracle evaluates a *sample of lanes* along the spec's independent axes
(``spec.extra["independent_axes"]``: batch, channel, head — lanes there do not interact, so the oracle on the inputs
sliced to those lanes is the oracle of those lanes).  The sample (:func:`sample_lanes`) holds the first and last lane
and the lanes just before and after every power of two below the size: n = 65 gives 0, 1, 2, 3, 4, 7, 8, …, 63,
64.  Probing T, a recurrence's oracle runs the whole sequence for the sampled lanes (sequential mpmath, ~0.25 ms
per step and lane); attention rows are independent given the keys, so the oracle evaluates the sampled query rows
only (:func:`rnnconf.oracles.forgetting_attention.attention_oracle` with ``rows``), each reading its key prefix.

One Hypothesis example is one sweep over every probed dim and size (each probe draws its own labelled inputs,
``T=257: x.seed`` …); a failure names the probe (``o (T=257 probe) …``); a passing verdict states the sizes probed
per dim, their count and the time taken against the profile's stated per-target probe budget.

``gradients-probe`` sweeps the cheapest dims (:func:`_grad_dims`: the channel or head axis) with the gradients
property's own judgement (float64 autograd of the reference form).
"""
from __future__ import annotations

import time

import torch

from ..oracles import DEFAULT_DPS, get_oracle
from .checks import draw_upstream
from .context import Ctx
from .registry import PROPERTIES, Property, register

# the size every dim other than the probed one is fixed at (see small_dims)
SMALL = {"B": 2, "T": 3, "D": 2, "H": 1, "K": 4, "V": 2, "N": 2}
PROBED = ("B", "T", "D", "H", "K", "V", "N")  # the dims probed where a spec declares boundaries (sweep order: _ORDER)


def _one_past(n: int) -> bool:
    return n >= 3 and (n - 1) & (n - 2) == 0  # n = 2^k + 1


def probe_edges(spec, dim: str, profile) -> list[int]:
    """The boundaries of ``dim`` this profile probes, ascending (see ``Profile.probe_caps``)."""
    d = spec.dims[dim]
    full, plus = profile.probe_cap(dim, spec.extra.get("family"))
    return sorted(e for e in d.boundaries if d.lo <= e <= d.hi and (e <= full or (_one_past(e) and e <= plus)))


def sample_lanes(n: int) -> list[int]:
    """0, n − 1 and b − 1, b for every power of two b < n."""
    out, b = {0, n - 1}, 1
    while b < n:
        out |= {b - 1, b}
        b *= 2
    return sorted(i for i in out if 0 <= i < n)


def _select(t, shape, sel: dict):
    """``t`` indexed along every axis whose symbol is in ``sel`` (symbol -> LongTensor of lanes)."""
    if t is None:
        return None
    for ax, sym in enumerate(shape):
        if sym in sel:
            t = t.index_select(ax, sel[sym].to(t.device))
    return t


def _is_attention(spec) -> bool:
    return spec.extra.get("family") == "attention"


def lanes_for(spec, dim: str, size: int) -> tuple[dict, list | None]:
    """(lane selection along the independent axes, query rows or None) for a probe of ``dim`` at ``size``."""
    sel = {}
    if dim in spec.extra.get("independent_axes", ()):
        sel[dim] = torch.tensor(sample_lanes(size), dtype=torch.long)
    rows = sample_lanes(size) if dim == "T" and _is_attention(spec) else None
    return sel, rows


def judge_probe(ctx: Ctx, dim: str, p: dict) -> float:
    """Call the target on the probe's full inputs; judge its outputs at the sampled lanes against the oracle run on
    those lanes only."""
    spec = ctx.spec
    size = p["dims"][dim]
    call = ctx.call(p["inputs"], p["initial_state"])
    sel, rows = lanes_for(spec, dim, size)
    inputs = {a.name: p["inputs"][a.name] for a in spec.statics if a.name in p["inputs"]}
    for a in spec.inputs:
        if a.name in p["inputs"]:
            inputs[a.name] = _select(p["inputs"][a.name], a.shape, sel)
    h0 = _select(p["initial_state"], spec.state_arg.shape, sel) if spec.state_arg is not None else None
    kw = {"rows": rows} if rows is not None else {}
    res = get_oracle(spec.id)(**inputs, initial_state=h0, dps=DEFAULT_DPS, **kw)
    where = "".join(f"; sampled {s} lanes {v.tolist()}" for s, v in sel.items())
    if rows is not None:
        where += f"; sampled query rows {rows}"
    worst = 0.0
    for o in spec.outputs:
        if o.name not in call.outputs:
            continue
        obs = _select(call.outputs[o.name], o.shape, sel)
        if rows is not None and "T" in o.shape:
            obs = obs.index_select(o.shape.index("T"), torch.tensor(rows, dtype=torch.long))
        what = f"{o.name} ({dim}={size} probe{where}; indices into the sample)" if where else \
            f"{o.name} ({dim}={size} probe)"
        worst = max(worst, ctx.expect_close(what, obs, res.values[o.name], ctx.bound(res, o.name), call.desc))
    return worst


def small_dims(spec, dim: str, size: int) -> dict:
    """The probe's sizes: ``dim`` at ``size``, every other dim at its :data:`SMALL` size — fixed, not drawn: a
    sweep is one example, and Hypothesis's first example is its simplest (T = 1, B = 1), which would hide every
    bug that needs a recurrence or a second batch row."""
    return {d: (size if d == dim else max(spec.dims[d].lo, min(spec.dims[d].hi, SMALL.get(d, spec.dims[d].lo))))
            for d in spec.dims}


def _draw_probe(ctx: Ctx, dim: str, size: int, grad: bool = False) -> dict:
    # with the initial state whenever the target takes one (a state load past a block is a boundary bug too)
    p = ctx.draw_inputs(small_dims(ctx.spec, dim, size), with_state=True, prefix=f"{dim}={size}: ")
    return draw_upstream(ctx, p, prefix=f"{dim}={size}: ") if grad else p


# Budget, in CPU seconds of this process (time.process_time: other processes' load does not eat it).  A sweep runs
# T's probes first (where most boundary bugs live), then the other dims in PROBED order, each ascending in size, and
# leaves out a probe whose predicted cost would take the sweep past its budget: the cost of a dim's probes is taken
# as affine in n^p (p = 2 for attention's T, else 1) through its last two probes (a per-call overhead plus a part
# that grows with the size; after one probe, that probe's cost).  The probes run are decided by the first sweep of a
# (property, target, dtype, profile) in this process and kept for every later sweep (Hypothesis's shrinking and
# replays see the same probes; a saved example carries them in ``ex["run"]``), so a verdict never flips on timing.
# A passing verdict names every probe left out.
_ORDER = ("T", "B", "D", "H", "N", "K", "V")
_PLANS: dict = {}
GRAD_BUDGET_SHARE = 0.25  # gradients-probe's share of the per-target budget (boundary-probes has the rest)


def _budget(ctx: Ctx, share: float) -> float:
    b = ctx.profile.probe_budget_s
    return b * share if b else float("inf")


def _cost_exp(spec, dim: str) -> float:
    return 2.0 if dim == "T" and _is_attention(spec) else 1.0


def _predict(points: list, x: float) -> float:
    """Cost at size measure ``x`` from [(x_i, cost_i)]: affine through the last two points (slope ≥ 0)."""
    (x1, c1) = points[-1]
    if len(points) < 2:
        return c1
    x0, c0 = points[-2]
    slope = max(0.0, (c1 - c0) / (x1 - x0)) if x1 != x0 else 0.0
    return c1 + slope * max(0.0, x - x1)


def _sweep(ctx: Ctx, ex, judge, name: str, share: float) -> tuple[float, str]:
    """Judge the probes of ``ex`` within the budget; (worst ratio, "per dim: count (sizes) seconds; left out …")."""
    keys = sorted(ex["probes"], key=lambda k: (_ORDER.index(ex["probes"][k]["probed"]),
                                               ex["probes"][k]["dims"][ex["probes"][k]["probed"]]))
    plan_key = (name, ctx.target.id, str(ctx.dtype), ctx.profile.name)
    plan = ex.get("run") or _PLANS.get(plan_key)
    budget, start = _budget(ctx, share), time.process_time()
    worst, counts, secs, last, run = 0.0, {}, {}, {}, []
    for k in keys:
        p = ex["probes"][k]
        d, n = p["probed"], p["dims"][p["probed"]]
        if plan is not None and k not in plan:
            continue
        if plan is None and last.get(d):
            if time.process_time() - start + _predict(last[d], n ** _cost_exp(ctx.spec, d)) > budget:
                continue
        t0 = time.process_time()
        worst = max(worst, judge(ctx, p) or 0.0)
        c = time.process_time() - t0
        last.setdefault(d, []).append((n ** _cost_exp(ctx.spec, d), c))
        run.append(k)
        counts.setdefault(d, []).append(n)
        secs[d] = secs.get(d, 0.0) + c
    if plan is None:
        _PLANS[plan_key] = run
    ex["run"] = run if plan is None else plan
    per = "; ".join(f"{d}: {len(v)} ({', '.join(map(str, v))}) {secs[d]:.1f} s" for d, v in counts.items())
    left = [k for k in keys if k not in ex["run"]]
    b = f"{budget:g} s" if budget != float("inf") else "no"
    per += f"; {time.process_time() - start:.1f} CPU s of the {b} budget (profile {ctx.profile.name})"
    if left:
        per += f"; left out within that budget: {', '.join(left)}"
    return worst, per


def _probe_dims(spec) -> list[str]:
    return [d for d in PROBED if d in spec.dims and spec.dims[d].boundaries]


def _taken(ctx: Ctx, dim: str, size: int) -> bool:
    rule = ctx.target.dim_rules.get(dim)
    return rule is None or rule.accepts(size)


def _untaken(ctx: Ctx, dims) -> str:
    """The probes left out because the target does not take that size (its DimRule), stated."""
    out = [f"{d}={e}" for d in dims for e in probe_edges(ctx.spec, d, ctx.profile) if not _taken(ctx, d, e)]
    if not out:
        return ""
    rules = "; ".join(f"{d}: {r.doc}" for d, r in ctx.target.dim_rules.items())
    return f"; not probed (the target takes {rules}): {', '.join(out)}"


def _draw(ctx: Ctx):
    return {"probes": {f"{d}={e}": dict(_draw_probe(ctx, d, e), probed=d)
                       for d in _probe_dims(ctx.spec) for e in probe_edges(ctx.spec, d, ctx.profile)
                       if _taken(ctx, d, e)}}


def _check(ctx: Ctx, ex):
    worst, per = _sweep(ctx, ex, lambda c, p: judge_probe(c, p["probed"], p), "boundary-probes",
                        1 - GRAD_BUDGET_SHARE)
    small = ", ".join(f"{d}={n}" for d, n in small_dims(ctx.spec, "", 0).items())
    ctx.summary = f"boundary probes per dim — {per}; other dims at {small}{_untaken(ctx, _probe_dims(ctx.spec))}"
    return worst


register(Property(
    "boundary-probes", "each dim in turn at each kernel-boundary size it declares (2^k − 1, 2^k, 2^k + 1), the other "
    "dims small: outputs and final state at sampled lanes agree with the oracle within the bound",
    _draw, _check, concerns=lambda s: None if _probe_dims(s) else f"spec {s.id} declares no boundaries",
    examples=lambda profile: 1))


# ---- gradients ------------------------------------------------------------------------------------------------
def _grad_dims(spec) -> list[str]:
    """The cheapest dims: independent axes other than the batch (channels D, heads H) — a lane costs the same at
    any size there, where T, N lengthen the recurrence and K, V widen every step (and the reference's autograd)."""
    return [d for d in spec.extra.get("independent_axes", ()) if d != "B" and spec.dims[d].boundaries]


def _grad_draw(ctx: Ctx):
    return {"probes": {f"{d}={e}": dict(_draw_probe(ctx, d, e, grad=True), probed=d)
                       for d in _grad_dims(ctx.spec) for e in probe_edges(ctx.spec, d, ctx.profile)
                       if _taken(ctx, d, e)}}


def _grad_check(ctx: Ctx, ex):
    worst, per = _sweep(ctx, ex, PROPERTIES["gradients"].check, "gradients-probe", GRAD_BUDGET_SHARE)
    ctx.summary = f"gradient boundary probes — {per}{_untaken(ctx, _grad_dims(ctx.spec))}"
    return worst


def _grad_concerns(spec):
    if not _grad_dims(spec):
        return f"spec {spec.id} declares no boundaries on a channel or head axis"
    base = PROPERTIES["gradients"].concerns
    return base(spec) if base is not None else None


register(Property(
    "gradients-probe", "gradients at each kernel-boundary size of the cheapest dims (channels D or heads H), the "
    "others small, agree with float64 autograd of the spec's reference form within the derived bound",
    _grad_draw, _grad_check, requires=frozenset({"grad"}), concerns=_grad_concerns, examples=lambda profile: 1))
