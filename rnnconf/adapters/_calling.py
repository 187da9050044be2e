"""Calling a third-party differentiable function inside a context that its backward needs as well.

Autograd runs a library's backward after the forward's ``with`` block has closed; a context the library's kernels
depend on (an autotuner pinned to one config under the Triton interpreter, a ``torch.cuda.device`` shim on the CPU)
must be entered again there.  :func:`call_within` does both: ``run(*args, **kwargs)`` under ``context()`` on
detached leaves, and the backward of that graph under a fresh ``context()``.
"""
from __future__ import annotations

from typing import Callable

import torch


class _WithinBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run, rebuild, context, *tensors):
        ctx.set_materialize_grads(False)
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(t.requires_grad) for t in tensors]
            with context():
                outs = run(*rebuild(leaves))
        outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
        ctx.context, ctx.leaves, ctx.outs = context, leaves, outs
        return tuple(o.detach() if isinstance(o, torch.Tensor) else o for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        pairs = [(o, g) for o, g in zip(ctx.outs, grads)
                 if isinstance(o, torch.Tensor) and o.requires_grad and g is not None]
        wanted = [i for i, t in enumerate(ctx.leaves) if t.requires_grad]
        result = [None] * len(ctx.leaves)
        if pairs and wanted:
            with ctx.context():
                got = torch.autograd.grad([o for o, _ in pairs], [ctx.leaves[i] for i in wanted],
                                          [g for _, g in pairs], allow_unused=True)
            for i, g in zip(wanted, got):
                result[i] = g
        return (None, None, None, *result)


def call_within(run: Callable, context: Callable, args: tuple, kwargs: dict, backward_too: bool = True):
    """``run(*args, **kwargs)`` under ``context()`` (a zero-argument callable returning a context manager); with
    ``backward_too`` and a tensor argument requiring grad, its backward runs under a fresh ``context()`` too."""
    slots = [(i, None) for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    slots += [(None, k) for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    tensors = [args[i] if k is None else kwargs[k] for i, k in slots]
    if not backward_too or not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors):
        with context():
            return run(*args, **kwargs)

    def rebuild(leaves):
        a, kw = list(args), dict(kwargs)
        for (i, k), t in zip(slots, leaves):
            if k is None:
                a[i] = t
            else:
                kw[k] = t
        return a, kw

    shape = {}

    def call(a, kw):
        out = run(*a, **kw)
        shape["single"] = not isinstance(out, (tuple, list))
        return out

    outs = _WithinBackward.apply(call, rebuild, context, *tensors)
    return outs[0] if shape["single"] else outs
