"""Strided inputs: the same values in non-contiguous memory give the same result, and inputs are never written.

A kernel that reads raw storage as if it were contiguous (fla #547 kept an old layout after a refactor) computes on
the wrong elements when handed a view.  PyTorch's OpInfo checks this with ``test_noncontiguous_samples``; here every
tensor argument (inputs, params, the initial state) is passed, all at once, in each of these layouts:

* ``transposed``: a contiguous copy of the tensor with its last two axes swapped, viewed back (strides permuted);
* ``strided``: every other element of a buffer twice as long in the last axis (stride 2), the gaps NaN;
* ``offset``: a contiguous view at storage offset 7 of a larger buffer, the 7 leading elements NaN;
* ``broadcast``: a stride-0 axis — every argument constant along its first axis, passed as ``t[:1].expand``: the
  batch axis B for sequence inputs and the state (a batch of identical sequences, e.g. one prompt expanded over a
  batch), the only axis of a per-channel param (one value for every channel).  The spec allows any values there, so
  constant ones are in its domain; the contiguous reference call then gets the same constant values materialised.

The outputs must equal the contiguous call's bitwise — unless the target's traits declare
``layout_dependent`` (a reduction order that follows the strides), then each is judged against the oracle within the
bound — and every buffer (views, gaps and padding included) must hold the same bits after the call as before: a
target must not write into its inputs.  The contiguous call is checked for writes too.
"""
from __future__ import annotations

import torch

from .calling import PropertyFailure
from .context import Ctx
from .registry import Property, register

LAYOUTS = ("transposed", "strided", "offset", "broadcast")
OFFSET = 7


def _nan_like(shape, t: torch.Tensor) -> torch.Tensor:
    return torch.full(shape, float("nan"), dtype=t.dtype, device=t.device)


def view_in(layout: str, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(view with ``t``'s values in ``layout``, the buffer it lives in).  ``t``: contiguous; for ``broadcast`` its
    values must already be constant along axis 0."""
    if layout == "transposed" and t.dim() >= 2:
        buf = t.transpose(-1, -2).contiguous()
        return buf.transpose(-1, -2), buf
    if layout == "strided" and t.dim() >= 1:
        buf = _nan_like((*t.shape[:-1], 2 * t.shape[-1]), t)
        v = buf[..., ::2]
        v.copy_(t)
        return v, buf
    if layout == "offset":
        buf = _nan_like((t.numel() + OFFSET,), t)
        v = buf[OFFSET:].view(t.shape)
        v.copy_(t)
        return v, buf
    if layout == "broadcast" and t.dim() >= 1:
        buf = t[:1].clone()
        return buf.expand(t.shape), buf
    c = t.clone()  # a layout that does not exist for this rank (a 1-D tensor has nothing to transpose)
    return c, c


def _constant_along_0(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else (t[:1].expand(t.shape).clone() if t.dim() >= 1 else t)


def _tensors(spec, inputs: dict, h0, dtype, device) -> dict:
    """The call's tensors by argument name ("initial_state" included), contiguous, in the call's dtype/device."""
    from .calling import expected_dtype

    out = {a.name: inputs[a.name].to(device=device, dtype=dtype).contiguous() for a in spec.inputs
           if a.name in inputs}
    if h0 is not None:
        out["initial_state"] = h0.to(device=device, dtype=expected_dtype(spec.extra.get("state_dtype", "input"),
                                                                        dtype)).contiguous()
    return out


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a == b) | (torch.isnan(a) & torch.isnan(b))


def _call_checked(ctx: Ctx, inputs: dict, h0, given: dict, buffers: dict, layout: str):
    """Call with ``given`` tensors as they are; PropertyFailure if any buffer changed."""
    before = {n: b.detach().clone() for n, b in buffers.items()}
    call = ctx.call(inputs, h0, as_given=given)
    for n, b in buffers.items():
        same = _same_bits(b.detach(), before[n])
        if not bool(same.all()):
            k = int((~same).sum())
            raise PropertyFailure(f"{n}: the target wrote into its input ({layout} layout): {k} of {b.numel()} "
                                  f"elements of the buffer behind it changed during the call [{call.desc}]")
    return call


def _draw(ctx: Ctx):
    # a layout bug shows at any length: T ≤ 16 keeps the 8 calls of an example cheap (the Triton interpreter)
    return ctx.draw_inputs(ctx.draw_dims(bounds={"B": (2, None), "T": (1, 16)}))


def _check(ctx: Ctx, ex):
    spec, dev = ctx.spec, ctx.profile.device
    worst, oracle = 0.0, {}
    for layout in LAYOUTS:
        inputs, h0 = ex["inputs"], ex["initial_state"]
        if layout == "broadcast":  # the same values for the contiguous reference: constant along axis 0
            inputs = {k: (_constant_along_0(v) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
            h0 = _constant_along_0(h0)
            if h0 is not None and "fix_state" in spec.extra and not torch.equal(spec.extra["fix_state"](h0), h0):
                h0 = torch.ones_like(h0)  # state slots along axis 0 (sLSTM's h, c, n, m): all 1 is reachable
        contig = _tensors(spec, inputs, h0, ctx.dtype, dev)
        base = _call_checked(ctx, inputs, h0, contig, contig, "contiguous")
        ctx.expect_finite(base, inputs, h0)  # bitwise equal NaNs are no pass
        views = {n: view_in(layout, t) for n, t in _tensors(spec, inputs, h0, ctx.dtype, dev).items()}
        given = {n: v for n, (v, _) in views.items()}
        other = _call_checked(ctx, inputs, h0, given, {n: b for n, (_, b) in views.items()}, layout)
        strides = ", ".join(f"{n}: stride {tuple(v.stride())}, offset {v.storage_offset()}" for n, v in given.items())
        desc = f"{other.desc} with {layout} inputs ({strides})"
        if ctx.target.traits.layout_dependent:
            key = layout == "broadcast"  # every other layout holds the drawn values themselves
            res = oracle[key] = oracle.get(key) or ctx.oracle(inputs, h0)
            for name, obs in other.outputs.items():
                worst = max(worst, ctx.expect_close(f"{name} ({layout} inputs)", obs, res.values[name],
                                                    ctx.bound(res, name), desc))
            continue
        for name, obs in other.outputs.items():
            ctx.expect_equal(f"{name} with {layout} inputs vs contiguous", obs, base.outputs[name], desc)
    return worst


register(Property(
    "strided-inputs", "every tensor argument as a non-contiguous view of the same values (transposed copy viewed "
    "back, stride-2 slice, storage offset, stride-0 broadcast) gives bitwise the contiguous result (within the bound "
    "for traits with a layout-dependent reduction order), and no input buffer is written", _draw, _check,
    # each example is 4 layouts × 2 calls; the suite's 2 (the minimal example and one sized: Profile.suite_examples)
    examples=lambda profile: 2 if profile.suite_examples else max(3, profile.max_examples // 3)))
