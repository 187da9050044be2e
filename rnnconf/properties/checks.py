"""Generic properties: each applies to any target implementing a spec (a built-in form or a third party's kernel)
whose structure has what it needs — ``concerns(spec)`` (state, causality, varlen, independent axes, a gradient
model); ``requires``/``applies`` name the target declarations that exclude it (see :mod:`.registry`).

A :class:`Property` has two halves so that a failing example can be saved and replayed on its own:
``draw(ctx) -> example`` (labelled Hypothesis draws, realised into float64 tensors) and
``check(ctx, example) -> worst error/bound ratio`` (raises :class:`PropertyFailure` on a violation).
"""
from __future__ import annotations

from typing import Callable

import torch
from hypothesis import strategies as st

from ..spec import diagonal
from ..spec.base import time_axis
from ..spec.errors import saved_u, tiny, unit_roundoff
from . import strategies as S
from .calling import PropertyFailure, call_target
from .context import Ctx
from .registry import PROPERTIES, Property, prop, properties_for, register  # noqa: F401  (re-exported)


def _main(spec) -> str:
    """The spec's sequence output (``o``, or ``h`` for the nonlinear cells): its first non-state output."""
    return next(o.name for o in spec.outputs if not o.state)


def _t_axis(spec, out=None):
    out = out or _main(spec)
    for o in spec.outputs:
        if o.name == out:
            return o.shape.index("T")
    raise KeyError(out)


def _state_outputs(spec):
    return [o.name for o in spec.outputs if o.state]


def _seq_outputs(spec):
    return [o.name for o in spec.outputs if not o.state]


def _judge_all(ctx: Ctx, call, res, label="", extra_steps=0.0) -> float:
    worst = 0.0
    for name, obs in call.outputs.items():
        worst = max(worst, ctx.expect_close(f"{label}{name}", obs, res.values[name],
                                            ctx.bound(res, name, extra_steps), call.desc))
    return worst


def _slice_time(spec, inputs: dict, lo, hi) -> dict:
    """Tokens [lo, hi) of every input (an axis of n steps per token, "T*N", is cut at lo·n, hi·n); statics kept."""
    out = {a.name: inputs[a.name] for a in spec.statics if a.name in inputs}
    for a in spec.inputs:
        if a.name in inputs:
            v = inputs[a.name]
            ax = time_axis(a)
            f = spec.time_factor(a, inputs) if ax is not None else 1
            out[a.name] = v.narrow(ax, lo * f, (hi - lo) * f) if ax is not None else v
    return out


# ---------------------------------------------------------------------------------------------------------------
@prop("oracle", "agrees with the mpmath oracle within the derived bound (outputs and final state)", all_dtypes=True)
def _oracle():
    def draw(ctx: Ctx):
        return ctx.draw_inputs(ctx.draw_dims())

    def check(ctx: Ctx, ex):
        call = ctx.call(ex["inputs"], ex["initial_state"])
        return _judge_all(ctx, call, ctx.oracle(ex["inputs"], ex["initial_state"]))

    return draw, check


@prop("poisoned-allocations", "with every torch.empty* allocation NaN-filled, no NaN reaches an output the oracle "
      "says is finite (unwritten outputs show)")
def _poison():
    def draw(ctx: Ctx):
        return ctx.draw_inputs(ctx.draw_dims())

    def check(ctx: Ctx, ex):
        call = ctx.call(ex["inputs"], ex["initial_state"], poison=True)
        return _judge_all(ctx, call, ctx.oracle(ex["inputs"], ex["initial_state"]), label="(poisoned) ")

    return draw, check


def _perturbed(ctx: Ctx, inputs: dict, seed: int, where: Callable, fill: float | None = None) -> dict:
    """Copy of ``inputs`` with elements selected by ``where(arg, tensor, steps per token) -> bool mask`` replaced
    by fresh in-domain values (or by ``fill``: NaN/Inf poison)."""
    out = {a.name: inputs[a.name] for a in ctx.spec.statics if a.name in inputs}
    for i, a in enumerate(ctx.spec.inputs):
        if a.name not in inputs:
            continue
        v = inputs[a.name]
        mask = where(a, v, ctx.spec.time_factor(a, inputs) if time_axis(a) is not None else 1)
        if mask is None:
            out[a.name] = v
            continue
        if fill is None:
            d = ctx.domain(a.name)
            new = S.round_to(S.realize(d, v.shape, seed + i, 1.0, 0.3, S.domain_edges(d)), ctx.dtype, d)
        else:
            new = torch.full_like(v, fill)
        out[a.name] = torch.where(mask, new, v)
    return out


def _time_mask(t0):
    def where(a, v, f):
        ax = time_axis(a)
        if ax is None:
            return None
        idx = torch.arange(v.shape[ax]) // f > t0  # f steps per token along a "T*N" axis
        shape = [1] * v.dim()
        shape[ax] = -1
        return idx.view(shape).expand_as(v)

    return where


def _causal_spec(spec):
    return None if spec.extra.get("causal", True) else f"spec {spec.id} is not causal: {spec.notes.split(':')[0]}"


def _exact_prefix(ctx: Ctx, ex, ax):
    """(value, bound) of an output's first n steps from the oracle on ``ex`` (an adaptive target's check)."""
    cache = {}

    def get(name, n):
        if "res" not in cache:
            cache["res"] = ctx.oracle(ex["inputs"], ex["initial_state"])
        res = cache["res"]
        return res.values[name].narrow(ax, 0, n), ctx.bound(res, name).narrow(ax, 0, n)

    return get


def _exact_select(ctx: Ctx, ex, name, ax, k):
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    return res.values[name].select(ax, k), ctx.bound(res, name).select(ax, k)


@prop("causality-perturb", "perturbing inputs after t leaves outputs up to t bitwise unchanged", concerns=_causal_spec)
def _causal_perturb():
    def draw(ctx: Ctx):
        ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (2, None)}))
        T = ex["dims"]["T"]
        ex["t0"] = ctx.draw(st.integers(0, T - 2), "t0")
        ex["seed"] = ctx.draw(st.integers(0, 2**31 - 1), "perturbation.seed")
        return ex

    def check(ctx: Ctx, ex):
        base = ctx.call(ex["inputs"], ex["initial_state"])
        ctx.expect_finite(base, ex["inputs"], ex["initial_state"])  # bitwise equal NaNs are no pass
        pert = _perturbed(ctx, ex["inputs"], ex["seed"], _time_mask(ex["t0"]))
        other = ctx.call(pert, ex["initial_state"])
        ctx.expect_finite(other, pert, ex["initial_state"], what="(perturbed) ")
        ax = _t_axis(ctx.spec)
        exact = _exact_prefix(ctx, ex, ax)
        for name in _seq_outputs(ctx.spec):
            n = ex["t0"] + 1
            ctx.expect_unchanged(f"{name}[..:{n}] after perturbing inputs at t > {ex['t0']}",
                                 other.outputs[name].narrow(ax, 0, n), base.outputs[name].narrow(ax, 0, n),
                                 other.desc, lambda name=name, n=n: exact(name, n))
        return 0.0

    return draw, check


@prop("causality-nan", "NaN/Inf placed in inputs after t never reaches outputs up to t", concerns=_causal_spec)
def _causal_nan():
    def draw(ctx: Ctx):
        ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (2, None)}))
        ex["t0"] = ctx.draw(st.integers(0, ex["dims"]["T"] - 2), "t0")
        ex["poison"] = ctx.draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]), "poison")
        return ex

    def check(ctx: Ctx, ex):
        base = ctx.call(ex["inputs"], ex["initial_state"])
        # the poisoned call's outputs after t0 may be NaN; up to t0 they must equal these, which must be finite
        ctx.expect_finite(base, ex["inputs"], ex["initial_state"])
        pois = _perturbed(ctx, ex["inputs"], 0, _time_mask(ex["t0"]), fill=ex["poison"])
        other = ctx.call(pois, ex["initial_state"])
        ax = _t_axis(ctx.spec)
        n = ex["t0"] + 1
        exact = _exact_prefix(ctx, ex, ax)
        for name in _seq_outputs(ctx.spec):
            ctx.expect_unchanged(f"{name}[..:{n}] with {ex['poison']} in inputs at t > {ex['t0']}",
                                 other.outputs[name].narrow(ax, 0, n), base.outputs[name].narrow(ax, 0, n),
                                 other.desc, lambda name=name: exact(name, n))
        return 0.0

    return draw, check


@prop("state-carry", "run(x[:τ]) then run(x[τ:], its final state) equals the oracle's run(x), for every τ",
      requires=frozenset({"initial_state", "final_state"}), concerns=lambda s: None if s.has_state else "stateless")
def _carry():
    def draw(ctx: Ctx):
        return ctx.draw_inputs(ctx.draw_dims(bounds={"T": (2, 16)}), with_state=True)

    def check(ctx: Ctx, ex):
        T = ex["dims"]["T"]
        res = ctx.oracle(ex["inputs"], ex["initial_state"])
        ax = _t_axis(ctx.spec)
        worst = 0.0
        for tau in range(1, T):
            first = ctx.call(_slice_time(ctx.spec, ex["inputs"], 0, tau), ex["initial_state"])
            h_tau = first.outputs["final_state"]
            second = ctx.call(_slice_time(ctx.spec, ex["inputs"], tau, T), h_tau)
            m = _main(ctx.spec)
            o = torch.cat([first.outputs[m], second.outputs[m]], ax)
            # one extra rounding: the carried state is stored in the dtype between the two calls
            desc = f"{first.desc} then {second.desc} (τ={tau})"
            worst = max(worst, ctx.expect_close(f"{m} (split at τ={tau})", o, res.values[m],
                                                ctx.bound(res, m, extra_steps=1.0), desc))
            worst = max(worst, ctx.expect_close(f"final_state (split at τ={tau})", second.outputs["final_state"],
                                                res.values["final_state"], ctx.bound(res, "final_state", 1.0), desc))
        return worst

    return draw, check


def _independence(axis: str):
    def draw(ctx: Ctx):
        ex = ctx.draw_inputs(ctx.draw_dims(bounds={axis: (2, None)}))
        ex["keep"] = ctx.draw(st.integers(0, ex["dims"][axis] - 1), f"kept {axis} index")
        ex["seed"] = ctx.draw(st.integers(0, 2**31 - 1), "perturbation.seed")
        return ex

    def check(ctx: Ctx, ex):
        k = ex["keep"]

        def where(a, v, f):
            if axis not in a.shape:
                return None
            ax = a.shape.index(axis)
            idx = torch.arange(v.shape[ax]) != k
            shape = [1] * v.dim()
            shape[ax] = -1
            return idx.view(shape).expand_as(v)

        base = ctx.call(ex["inputs"], ex["initial_state"])
        ctx.expect_finite(base, ex["inputs"], ex["initial_state"])  # bitwise equal NaNs are no pass
        pert = _perturbed(ctx, ex["inputs"], ex["seed"], where)
        other = ctx.call(pert, ex["initial_state"])
        ctx.expect_finite(other, pert, ex["initial_state"], what="(perturbed) ")
        for o in ctx.spec.outputs:
            if o.name in base.outputs and axis in o.shape:
                ax = o.shape.index(axis)
                ctx.expect_unchanged(f"{o.name}[{axis}={k}] after perturbing every other {axis}",
                                     other.outputs[o.name].select(ax, k), base.outputs[o.name].select(ax, k),
                                     other.desc, lambda o=o, ax=ax: _exact_select(ctx, ex, o.name, ax, k))
        return 0.0

    return draw, check


for _axis, _what in (("B", "batch"), ("D", "channel"), ("H", "head")):
    register(Property(
        f"{_what}-independence", f"perturbing every other {_what} ({_axis}) leaves this one's outputs bitwise "
        f"unchanged", *_independence(_axis),
        concerns=(lambda a: lambda s: None if a in s.extra.get("independent_axes", ("B",))
                  else f"spec has no independent {a} axis")(_axis)))


@prop("varlen", "packed sequences (cu_seqlens, lengths including 0 and 1) agree with the oracle run per sequence; "
      "cu_seqlens is not modified", requires=frozenset({"varlen"}),
      concerns=lambda s: None if s.supports_varlen else f"spec {s.id} has no varlen form")
def _varlen():
    def draw(ctx: Ctx):
        cap = ctx.profile.cap("T", 40, ctx.spec.extra.get("family"))
        lengths = S.draw_lengths(ctx.data, ctx.profile, cap)
        dims = ctx.draw_dims(fixed={"B": 1, "T": sum(lengths)})
        N = len(lengths)
        ex = ctx.draw_inputs(dims, with_state=False)
        ex["lengths"] = lengths
        if "initial_state" in ctx.target.supports and ctx.draw(st.booleans(), "initial_state"):
            ex["initial_state"] = ctx.draw_state(ctx.spec.state_arg, {**dims, "B": N})
        return ex

    def check(ctx: Ctx, ex):
        lengths = ex["lengths"]
        cu = [0]
        for n in lengths:
            cu.append(cu[-1] + n)
        call = ctx.call(ex["inputs"], ex["initial_state"], cu_seqlens=cu)
        ax = _t_axis(ctx.spec)
        worst = 0.0
        for n, (lo, hi) in enumerate(zip(cu[:-1], cu[1:])):
            h0 = ex["initial_state"][n:n + 1] if ex["initial_state"] is not None else None
            res = ctx.oracle(_slice_time(ctx.spec, ex["inputs"], lo, hi), h0)
            desc = f"{call.desc} sequence {n} (t ∈ [{lo}, {hi}))"
            m = _main(ctx.spec)
            worst = max(worst, ctx.expect_close(f"{m}[seq {n}]", call.outputs[m].narrow(ax, lo, hi - lo),
                                                res.values[m], ctx.bound(res, m), desc))
            if "final_state" in call.outputs:
                worst = max(worst, ctx.expect_close(f"final_state[seq {n}]", call.outputs["final_state"][n:n + 1],
                                                    res.values["final_state"], ctx.bound(res, "final_state"), desc))
        return worst

    return draw, check


@prop("determinism", "two identical calls give bitwise identical outputs",
      applies=lambda s, t: None if t.deterministic else "target declares itself nondeterministic")
def _determinism():
    def draw(ctx: Ctx):
        return ctx.draw_inputs(ctx.draw_dims())

    def check(ctx: Ctx, ex):
        a = ctx.call(ex["inputs"], ex["initial_state"])
        ctx.expect_finite(a, ex["inputs"], ex["initial_state"])  # bitwise equal NaNs are no pass
        b = ctx.call(ex["inputs"], ex["initial_state"])
        for name in a.outputs:
            ctx.expect_equal(f"{name} on repeat", b.outputs[name], a.outputs[name], b.desc)
        return 0.0

    return draw, check


# ---- gradients ------------------------------------------------------------------------------------------------
def _grad_magnitudes(spec, target, inputs, h0, do, dht, dtype=None):
    cumsum = target.traits.cumsum != "none"
    if spec.extra.get("family") == "diagonal":
        return diagonal.grad_magnitudes(spec.extra["coeffs"], inputs, h0, do, dht, spec.extra.get("log_a"), cumsum)
    fn = spec.extra.get("grad_magnitudes")
    if fn is None:
        return None
    import inspect

    params = inspect.signature(fn).parameters
    # a model that takes the evaluating precision gets it, also through **kwargs (a spec's wrapper lambda): dropped
    # silently, its bound would be the first-order one at the exact point, whatever the target's precision
    anykw = any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params.values())
    kw = {"traits": target.traits} if ("traits" in params or anykw) else {}
    if "dtype" in params or anykw:
        kw["dtype"] = dtype
    return fn(inputs, h0, do, dht, cumsum=cumsum, **kw)


def _grads_applicable(spec):
    if spec.extra.get("family") != "diagonal" and "grad_magnitudes" not in spec.extra:
        return "spec states no gradient error model"
    if "reference_form" not in spec.extra:
        return "spec names no reference form"
    return None


@prop("gradients", "gradients of every differentiable input and the initial state agree with float64 autograd of "
      "the spec's reference form (itself gradchecked) within the derived bound", all_dtypes=True,
      requires=frozenset({"grad"}), concerns=_grads_applicable)
def _gradients():
    """Bound per gradient element: the spec's model at the target's traits, plus the reference's own, plus — for a
    target whose backward re-reads activations saved rounded (``Traits.saves``) — u_s·mag.

    Derivation of the saved term: the backward computes each gradient as a sum of products of exactly representable
    factors (inputs, upstream gradients, adjoints recomputed from them) and saved activations; every adjoint formula
    of the specs here has at most one saved activation per summand (diagonal: h_{t−1} in λ_t·∂a_t·h_{t−1}; delta
    rule: S_{t−1} or u_t = S_{t−1}ᵀk_t; attention: o_i in Δ_i = do_i·o_i).  A value stored in dtype s and re-read
    is v(1 + δ), |δ| ≤ u_s — an input perturbation of the backward — so to first order it moves each summand by at
    most u_s·|summand|, and the gradient by at most u_s·Σ|summands| ≤ u_s·mag, mag being the gradient's magnitude
    shadow (which bounds Σ|summands|); ×(1 + u_out) for the final rounding, as for every other term."""
    def draw(ctx: Ctx):
        return draw_upstream(ctx, ctx.draw_inputs(ctx.draw_dims(bounds={"T": (1, 40)})))

    def check(ctx: Ctx, ex):
        from ..registry import get_form

        spec = ctx.spec
        ref_target = get_form(f"{spec.id}/{spec.extra['reference_form']}")
        names = [a.name for a in spec.inputs if a.differentiable]

        # target, in the dtype under test
        tcall = call_target(spec, ctx.target, ex["inputs"], ctx.dtype, ctx.profile.device,
                            initial_state=ex["initial_state"], output_final_state=ex["dht"] is not None,
                            requires_grad=True)
        rcall = call_target(spec, ref_target, ex["inputs"], torch.float64, "cpu",
                            initial_state=ex["initial_state"], output_final_state=ex["dht"] is not None,
                            requires_grad=True)
        tg = _backward(tcall, ex, names, ctx.dtype, ctx.profile.device)
        rg = _backward(rcall, ex, names, torch.float64, "cpu")
        mags = _grad_magnitudes(spec, ctx.target, ex["inputs"], ex["initial_state"], ex["do"], ex["dht"], ctx.dtype)
        T = ex["dims"]["T"]
        steps = torch.tensor(float(T + 1), dtype=torch.float64)
        G = spec.extra["log_a"](**ex["inputs"]).abs().sum(1, keepdim=True) if "log_a" in spec.extra else None
        log_mass = None
        if ctx.target.traits.log_values:  # every contribution's relative error ≤ u·c_log·(its log mass) ≤ …·max
            res = ctx.oracle(ex["inputs"], ex["initial_state"])
            lv = res.logvalue.get(_main(spec))
            if lv is not None and lv.numel():
                mg = res.mag[_main(spec)]
                log_mass = float(torch.where(mg > 0, lv / mg, torch.zeros_like(lv)).max())
        # gate partials below tiny are absolutely accurate only, and their cofactor can be ≫ 1: a floor of
        # c_step·tiny·Λ(1 + m_{t−1} + |v_t|) per summand (rnnconf.spec.diagonal.underflow_cofactors)
        cof = diagonal.underflow_cofactors(spec.extra["coeffs"], ex["inputs"], ex["initial_state"], ex["do"],
                                           ex["dht"]) if spec.extra.get("family") == "diagonal" else None
        worst = 0.0
        for name, g_obs in tg.items():
            g_ref = rg[name]
            if not both_grads(name, g_obs, g_ref, tcall.desc):
                continue
            mag, cond, ref_cond, uf = mags[name], None, None, None
            if isinstance(mag, tuple):  # (magnitude, condition term[, underflow count]) — the cond charges the
                mag, cond, *rest = mag  # target's traits, and the reference's own is taken at its traits
                uf = rest[0] if rest else None
                ref_cond = _grad_magnitudes(spec, ref_target, ex["inputs"], ex["initial_state"], ex["do"],
                                            ex["dht"])[name][1]
            lm = G if (G is not None and G.dim() == mag.dim()) else (G.squeeze(1) if G is not None else None)
            b = spec.error_model.bound(steps, mag, lm, ctx.dtype, ctx.target.traits, cond=cond, underflow=uf)
            b = b + spec.error_model.bound(steps, mag, lm, torch.float64, ref_target.traits,
                                           cond=ref_cond)  # the reference's own
            u_s = saved_u(ctx.dtype, ctx.target.traits)
            if u_s:  # activations the backward re-reads rounded to Traits.saves (see the docstring)
                b = b + u_s * mag * (1 + unit_roundoff(ctx.dtype))
            if log_mass is not None:
                b = b + spec.error_model.accumulate_u(ctx.dtype, ctx.target.traits) * spec.error_model.c_log \
                    * log_mass * mag
            if cof is not None:
                b = b + spec.error_model.c_step * _tiny_acc(ctx.dtype, ctx.target.traits) * (
                    cof if name != "initial_state" else cof[:, 0])
            worst = max(worst, ctx.expect_close(f"d{name}", g_obs, g_ref, b, f"backward of {tcall.desc}",
                                                source=f"float64 autograd of {ref_target.id}"))
        return worst

    return draw, check


def _tiny_acc(dtype, traits) -> float:
    """Smallest normal number of the precision a form computes in (``Traits.accumulate``, as ``accumulate_u``)."""
    t = tiny(dtype)
    if traits.accumulate not in (None, "input") and hasattr(torch, str(traits.accumulate)):
        t = min(t, tiny(getattr(torch, traits.accumulate)))
    return t


def draw_upstream(ctx: Ctx, ex: dict, prefix: str = "") -> dict:
    """Add the upstream gradients of a gradients example to ``ex`` (drawn inputs): ``do`` and, when the target
    returns a final state and the draw says so, ``dht`` (complex for complex outputs)."""
    dims = ex["dims"]
    cplx = any(o.dtype == "complex" for o in ctx.spec.outputs)

    def upstream(name, shape):
        seed = ctx.draw(st.integers(0, 2**31 - 1), f"{prefix}{name}.seed")
        re = S.round_to(S.realize(S.Domain(name), shape, seed, 1.0, 0.0, ()), ctx.dtype)
        if not cplx:
            return re
        return torch.complex(re, S.round_to(S.realize(S.Domain(name), shape, seed + 1, 1.0, 0.0, ()), ctx.dtype))

    ex["do"] = upstream("do", S.shape_of(ctx.spec.outputs[0].shape, dims))
    ex["dht"] = None
    if ctx.final_state and ctx.draw(st.booleans(), f"{prefix}final-state gradient"):
        ex["dht"] = upstream("dht", S.shape_of(ctx.spec.state_arg.shape, dims))
    return ex


def both_grads(name, g_obs, g_ref, desc) -> bool:
    """True when target and reference both returned a gradient for ``name``; False when neither did (or only the
    reference, and it is zero); PropertyFailure when only one did."""
    if g_obs is not None and g_ref is not None:
        return True
    if (g_obs is None) != (g_ref is None) and not (g_ref is not None and g_ref.abs().max() == 0):
        raise PropertyFailure(f"d{name}: target returned {'no' if g_obs is None else 'a'} gradient, "
                              f"reference {'none' if g_ref is None else 'one'} [{desc}]")
    return False


def _backward(call, ex, names, dtype, device):
    raw = call.raw

    def inner(out, up):  # L = Σ Re(conj(up)·out): the real pairing, also for complex outputs
        up = up.to(device=device, dtype=out.dtype)
        return (torch.conj(up) * out).real.sum() if out.is_complex() else (up * out).sum()

    loss = inner(raw[next(o for o in raw if o != "final_state")], ex["do"])
    if ex["dht"] is not None:
        loss = loss + inner(raw["final_state"], ex["dht"])
    leaves = dict(call.leaves)
    try:
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    except Exception as e:
        from .calling import TargetRaised
        raise TargetRaised(f"backward of {call.desc}", e) from e
    def as_ref(g):  # float64, or complex128 for a complex leaf (never drop an imaginary part)
        return None if g is None else g.detach().cpu().to(torch.complex128 if g.is_complex() else torch.float64)

    return {n: as_ref(g) for n, g in zip(leaves, grads)}


# ---- combine operator -----------------------------------------------------------------------------------------
@prop("combine-associative", "the scan's combine operator computes the spec's combine (a₁a₂, a₂b₁ + b₂), checked "
      "in float64, and is associative: (p∘q)∘r = p∘(q∘r) within the bound",
      concerns=lambda s: None if s.extra.get("family") == "diagonal" else "the (a, b) combine of diagonal recurrences",
      applies=lambda s, t: "target exposes no combine operator" if t.combine is None else None)
def _assoc():
    def draw(ctx: Ctx):
        shape = (ctx.draw(st.integers(1, 64), "n"),)
        d = ctx.spec.extra.get("combine_domain") or {}
        pairs = []
        for k in range(3):
            g = S.draw_tensor(ctx.data, f"p{k}.log_a", S.Domain("log_a", lo=-1e4, hi=0.0, law="loguniform",
                                                                edges=(0.0, -1e4)), shape, ctx.dtype)
            b = S.draw_tensor(ctx.data, f"p{k}.b", S.Domain("b", edges=(0.0,)), shape, ctx.dtype)
            pairs.append((g, b))
        return {"pairs": pairs, "complex": ctx.spec.extra.get("state_dtype") == "complex", "dims": {}, **d}

    def check(ctx: Ctx, ex):
        comb = ctx.target.combine
        ps = [(S.round_to(torch.exp(g), ctx.dtype).to(ctx.dtype), b.to(ctx.dtype)) for g, b in ex["pairs"]]
        left = comb(comb(ps[0], ps[1]), ps[2])
        right = comb(ps[0], comb(ps[1], ps[2]))
        (a1, b1), (a2, b2), (a3, b3) = [(a.double().abs(), b.double().abs()) for a, b in ps]
        em = ctx.spec.error_model
        worst = 0.0
        # 1. the operator is the spec's: apply step p, then step q (a swapped-operand combine is associative too,
        #    so associativity alone cannot see it)
        (pa, pb), (qa, qb) = [(a.double(), b.double()) for a, b in ps[:2]]
        got = comb(ps[0], ps[1])
        one = torch.tensor(1.0, dtype=torch.float64)
        for what, g_, want, m in (("a", got[0], pa * qa, a1 * a2), ("b", got[1], qa * pb + qb, a2 * b1 + b2)):
            worst = max(worst, ctx.expect_close(f"p∘q, {what} (spec: (a₁a₂, a₂b₁ + b₂))", g_.double(), want,
                                                em.bound(one, m, None, ctx.dtype, ctx.target.traits),
                                                f"{ctx.target.id}.combine"))
        mag_a = a1 * a2 * a3
        mag_b = a3 * (a2 * b1 + b2) + b3
        steps = torch.tensor(3.0, dtype=torch.float64)
        for what, l, r, m in (("a", left[0], right[0], mag_a), ("b", left[1], right[1], mag_b)):
            bnd = 2 * em.bound(steps, m, None, ctx.dtype, ctx.target.traits)
            worst = max(worst, ctx.expect_close(f"(p∘q)∘r vs p∘(q∘r), {what}", l.double(), r.double(), bnd,
                                                f"{ctx.target.id}.combine", against_oracle=False))
        return worst

    return draw, check

