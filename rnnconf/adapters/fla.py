"""Adapters for flash-linear-attention (``pip install fla-core``, imported as ``fla``): one :class:`FlaOp` entry per
fla function that implements an rnnconf spec.  fla is called, never copied.

Traits are read from fla 0.6.0's kernel source:

* ``fla.ops.hgrn.fused_recurrent_hgrn`` — one program per (sequence, block of BD channels), a loop over t with h in
  float32 registers: ``b_h = exp(b_g) * b_h + b_x``, every load cast ``.to(tl.float32)`` (float64 inputs included;
  fla's ``exp`` casts to float32 as well), each step stored in the input dtype.  No cumulative log-gate sum.
  Backward: reverse-time loop reading the *stored* output o (input dtype) as h_{t−1}; dx, dg, dh0 in float32.
  Supports initial_state, output_final_state, cu_seqlens and autograd.
* ``fla.ops.hgrn.chunk_hgrn`` — chunks of BT = 128 steps: a float32 loop per chunk that also stores the in-chunk
  cumulative log-gate sum gc, then a pass over chunks adding exp(gc_t)·h_{end of previous chunk}.  Signature
  ``chunk_hgrn(x, g, initial_state=None, output_final_state=False)``: no cu_seqlens.  Has a backward.

Under the Triton interpreter fla's autotuner cannot benchmark, so each call (and its backward) runs with the
autotuned kernels of the op's module pinned to config 0; :func:`variants` gives one Target per config.  fla's
"Triton is not supported on current platform, roll back to CPU" warning is expected there and suppressed.  A kernel
the interpreter cannot execute is probed once when the Target is built and skipped with the interpreter's error
(:func:`rnnconf.adapters.interpreter_skips`): chunk_hgrn under Triton 3.9.

The traits describe fla as it is, so what it does differently shows up as verdicts, not as looser bounds: float64
inputs are computed in float32 (the oracle and gradient properties fail in float64); the half-precision backward of
fused_recurrent_hgrn reads h_{t−1} from the output stored in the input dtype (a second rounding in dg); chunk_hgrn
returns final_state in float32 whatever the input dtype, and its backward returns no gradient for initial_state and
ignores the final-state gradient.  Natively, fla's ``exp`` is ``tl.exp`` (ex2.approx on NVIDIA GPUs, relative error
growing with |g|), where the error model counts 1 u per exp.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import warnings
from dataclasses import dataclass, replace
from typing import Callable

import torch

from ..spec.errors import Traits
from ..spec.targets import FEATURES, FLOAT_DTYPES, Target
from . import Adapter, interpreter_skips, register_adapter

LIBRARY = "fla"
DISTRIBUTION = "fla-core"
_ROLLBACK_WARNING = "Triton is not supported on current platform"


@dataclass(frozen=True)
class FlaOp:
    name: str
    spec_id: str
    module: str
    function: str
    traits: Traits
    supports: frozenset
    doc: str
    dtypes: tuple = FLOAT_DTYPES
    deterministic: bool = True
    adapt: Callable | None = None

    @property
    def adapter_name(self) -> str:
        return f"{LIBRARY}:{self.name}"


def without_varlen(fn: Callable) -> Callable:
    """For fla functions without ``cu_seqlens``: the canonical signature minus varlen."""

    def call(*args, cu_seqlens=None, **kwargs):
        if cu_seqlens is not None:
            raise TypeError(f"fla's {fn.__name__} takes no cu_seqlens (variable-length batches)")
        return fn(*args, **kwargs)

    return call


OPS = (
    FlaOp("fused_recurrent_hgrn", "hgrn", "fla.ops.hgrn.fused_recurrent", "fused_recurrent_hgrn",
          Traits(accumulate="float32", cumsum="none"), frozenset(FEATURES),
          "time loop per (sequence, channel block), float32 state in registers; backward reverse-time loop"),
    FlaOp("chunk_hgrn", "hgrn", "fla.ops.hgrn.chunk", "chunk_hgrn",
          Traits(accumulate="float32", cumsum="chunk", chunk_size=128), frozenset({"initial_state", "final_state",
                                                                                   "grad"}),
          "chunks of 128 steps: float32 loop per chunk, then exp(in-chunk log-gate cumsum) carries across chunks",
          adapt=without_varlen),
)


# ------------------------------------------------------------------------------------------------------------------
# calling fla quietly, with its autotuners pinned

@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ROLLBACK_WARNING)
        yield


def _pinned(module, index: int | None):
    if index is None:
        return contextlib.nullcontext()
    from ..kernels._backend import pin_autotune

    return pin_autotune(module, index)


class _PinnedBackward(torch.autograd.Function):
    """Runs ``run`` (fla's differentiable call) on detached leaves, and its backward under the same autotune pin:
    autograd calls fla's backward after the forward's context has closed, so the pin must be re-entered there."""

    @staticmethod
    def forward(ctx, run, rebuild, module, index, *tensors):
        ctx.set_materialize_grads(False)
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(t.requires_grad) for t in tensors]
            with _quiet(), _pinned(module, index):
                outs = run(*rebuild(leaves))
        outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
        ctx.module, ctx.index, ctx.leaves, ctx.outs = module, index, leaves, outs
        return tuple(o.detach() if isinstance(o, torch.Tensor) else o for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        pairs = [(o, g) for o, g in zip(ctx.outs, grads)
                 if isinstance(o, torch.Tensor) and o.requires_grad and g is not None]
        wanted = [i for i, t in enumerate(ctx.leaves) if t.requires_grad]
        result = [None] * len(ctx.leaves)
        if pairs and wanted:
            with _quiet(), _pinned(ctx.module, ctx.index):
                got = torch.autograd.grad([o for o, _ in pairs], [ctx.leaves[i] for i in wanted],
                                          [g for _, g in pairs], allow_unused=True)
            for i, g in zip(wanted, got):
                result[i] = g
        return (None, None, None, None, *result)


def _call_pinned(run: Callable, module, index: int | None, args: tuple, kwargs: dict):
    slots = [(i, None) for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    slots += [(None, k) for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    tensors = [args[i] if k is None else kwargs[k] for i, k in slots]
    if index is None or not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors):
        with _quiet(), _pinned(module, index):
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

    outs = _PinnedBackward.apply(call, rebuild, module, index, *tensors)
    return outs[0] if shape["single"] else outs


# ------------------------------------------------------------------------------------------------------------------
# building targets

def _load(op: FlaOp):
    try:
        with _quiet():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = importlib.import_module(op.module)
    except Exception as e:  # noqa: BLE001 — any failure to import fla makes the adapter unavailable
        first = (str(e).strip().splitlines() or [""])[0]
        raise ImportError(f"adapter {op.adapter_name!r} cannot import {op.module}: {type(e).__name__}: {first}") \
            from None
    fn = getattr(module, op.function, None)
    if fn is None:
        raise ImportError(f"adapter {op.adapter_name!r}: {op.module} has no {op.function} in "
                          f"{DISTRIBUTION} {_version()}")
    return module, fn


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _config_label(cfg) -> str:
    parts = [f"{k}={v}" for k, v in cfg.kwargs.items()]
    parts.append(f"num_warps={cfg.num_warps}")
    return ",".join(parts)


def _labels(module, index: int) -> str:
    from ..kernels._backend import pin_autotune

    with pin_autotune(module, index) as pinned:
        labels = {name: _config_label(cfg) for name, cfg in pinned}
    if len(set(labels.values())) <= 1:
        return next(iter(labels.values()), "")
    return "; ".join(f"{name}: {lab}" for name, lab in labels.items())


def _target(op: FlaOp, module, fn, index: int | None, suffix: str = "", pin_note: str = "") -> Target:
    run = op.adapt(fn) if op.adapt else fn

    def call(*args, **kwargs):
        return _call_pinned(run, module, index, args, kwargs)

    call.__name__ = call.__qualname__ = op.function
    call.__doc__ = f"fla {op.module}.{op.function} through rnnconf's canonical {op.spec_id} signature"
    doc = f"flash-linear-attention ({DISTRIBUTION} {_version()}) {op.module}.{op.function}: {op.doc}{pin_note}"
    target = Target(op.spec_id, op.adapter_name + suffix, call, kind="triton", traits=op.traits, dtypes=op.dtypes,
                    supports=op.supports, deterministic=op.deterministic, doc=doc)
    skips = interpreter_skips(target)
    return replace(target, skips=skips) if skips else target


@functools.lru_cache(maxsize=None)
def build(op: FlaOp) -> Target:
    """The adapter's Target: fla's own autotuning natively; autotuned kernels pinned to config 0 under the Triton
    interpreter (which cannot benchmark)."""
    from ..kernels._backend import autotune_configs, interpreter_active

    module, fn = _load(op)
    index, note = None, ""
    if interpreter_active() and autotune_configs(module):
        index = 0
        note = f"; autotune pinned to config 0 [{_labels(module, 0)}] under the Triton interpreter"
    return _target(op, module, fn, index, pin_note=note)


def variants(op: FlaOp) -> list[tuple[str, Target]]:
    """One Target per autotune config (index i pins every autotuned kernel of the op's module to its i-th config)."""
    return list(_variants(op))


@functools.lru_cache(maxsize=None)
def _variants(op: FlaOp) -> tuple[tuple[str, Target], ...]:
    from ..kernels._backend import autotune_configs

    module, fn = _load(op)
    counts = [n for _, n in autotune_configs(module)]
    if not counts:
        return ()
    out = []
    for i in range(min(counts)):
        label = _labels(module, i)
        out.append((label, _target(op, module, fn, i, suffix=f"[{label}]",
                                   pin_note=f"; autotune pinned to config {i} [{label}]")))
    return tuple(out)


for _op in OPS:
    register_adapter(Adapter(
        name=_op.adapter_name, spec_id=_op.spec_id, library=LIBRARY, distribution=DISTRIBUTION,
        doc=f"flash-linear-attention {_op.module}.{_op.function}: {_op.doc}",
        build=(lambda op: lambda: build(op))(_op), variants=(lambda op: lambda: variants(op))(_op)))
