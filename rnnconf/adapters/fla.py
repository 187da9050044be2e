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


# ------------------------------------------------------------------------------------------------------------------
# fla.ops.forgetting_attn.parallel_forgetting_attn — spec ``forgetting-attention``
#
# Read from fla 0.6.0 (fla/ops/forgetting_attn/parallel.py → fla/ops/attn/parallel.py, fla/ops/utils/cumsum.py):
#
# * ``parallel_forgetting_attn(q, k, v, g, scale=None, window_size=None, cu_seqlens=None)`` is
#   ``parallel_attn(q, k, v, g, scale, window_size, cu_seqlens)``: an autograd Function whose forward first forms
#   ``g_cumsum = chunk_global_cumsum(g, scale=RCP_LN2)`` — one *full-sequence* cumulative sum per (sequence, head),
#   in float32 (loads ``.to(tl.float32)``, a float32 carry across blocks of BT ∈ {32, 64, 128, 256} steps, the
#   only autotuned kernel on the path: 48 configs), multiplied by RCP_LN2 = 1.4426950216 (float32's 1/ln 2) after
#   summation and stored in float32 whatever g's dtype — so D_ij = c_i − c_j is a difference of cumsum entries
#   (traits ``cumsum="full"``).
# * ``parallel_attn_fwd_kernel``: flash attention in base 2, one program per (query tile of BT = 128, V block,
#   batch·head), key tiles of BS = 32 (64 on Hopper-class shared memory; 16 when T ≤ 16): s = tl.dot(q, k)·scale·
#   RCP_LN2 + gq − gk; running max, accumulator and denominator in float32; P rounded to q's dtype before
#   tl.dot(P, V); o stored in v's dtype.  K is loaded whole (BK = max(16, next_pow2(K)) ≤ 256, ``assert NK == 1``:
#   K > 256 raises); V in blocks of BV ≤ 64/128/256; every load is masked, so no K, V or T multiple is required
#   (nothing narrower than the spec's own dims: K, V ≤ 256, any T ≥ 1).
# * ``tl.dot`` is called without ``input_precision``: Triton's default, TF32 for float32 operands on NVIDIA tensor-core
#   GPUs (unless TRITON_F32_DEFAULT says otherwise).  The interpreter's dot is numpy's float32 matmul whatever the
#   precision asked (triton/runtime/interpreter.py ``create_dot``), so the traits say ``matmul="ieee"`` there and
#   ``"tf32"`` natively.
# * float64 inputs are accepted and returned as float64, but the scores' running max, denominator, accumulator, lse
#   and g_cumsum are float32 (and RCP_LN2 is a float32 constant, off by 1.3e-8 relative).
# * Backward: ``parallel_attn_bwd_kernel_dq`` and ``_dkv`` recompute P from the saved float32 lse; dg_cumsum of both
#   kernels summed, then ``chunk_global_cumsum(dg, reverse=True)`` in float32.  No atomics: deterministic.
# * varlen: ``cu_seqlens`` with B = 1 (``prepare_chunk_indices`` over query tiles), g's cumsum restarts per sequence.
#
# The autotuned cumsum kernel lives in fla.ops.utils.cumsum, not in the op's module: the adapter pins it through a
# namespace holding just that kernel (the other cumsum kernels, also autotuned, are not on this op's path).

def _fox_signature(fn: Callable) -> Callable:
    """rnnconf's ``fn(q, k, v, g, scale=None, cu_seqlens=None)`` onto fla's (full causal attention: no window)."""

    def call(q, k, v, g, scale=None, cu_seqlens=None):
        return fn(q, k, v, g, scale=scale, window_size=None, cu_seqlens=cu_seqlens)

    return call


def _fox_traits() -> Traits:
    import os

    from ..kernels._backend import interpreter_active

    if interpreter_active():
        matmul = "ieee"  # the interpreter's tl.dot is numpy float32 matmul for any input_precision
    else:
        matmul = "ieee" if os.environ.get("TRITON_F32_DEFAULT", "").strip().lower() == "ieee" else "tf32"
    return Traits(accumulate="float32", cumsum="full", matmul=matmul)


FOX_OP = FlaOp(
    "parallel_forgetting_attn", "forgetting-attention", "fla.ops.forgetting_attn", "parallel_forgetting_attn",
    Traits(accumulate="float32", cumsum="full", matmul="tf32"),  # as built natively; see _fox_traits
    frozenset({"varlen", "grad"}),  # rnnconf.spec.targets.STATELESS: cu_seqlens and autograd
    "flash attention in base 2 (query tiles 128, key tiles 32/64), D from a float32 full-sequence cumsum of g "
    "(chunk_global_cumsum), float32 softmax state, P rounded to the input dtype before P·V; backward dq and dk/dv "
    "kernels from the saved lse",
    adapt=_fox_signature)


def _fox_autotuned():
    """A namespace holding the autotuned kernels on parallel_forgetting_attn's path (for pin_autotune)."""
    import types

    with _quiet():
        cumsum = importlib.import_module("fla.ops.utils.cumsum")
    ns = types.ModuleType("fla.ops.forgetting_attn[autotuned]")
    ns.chunk_global_cumsum_scalar_kernel = cumsum.chunk_global_cumsum_scalar_kernel
    return ns


@functools.lru_cache(maxsize=None)
def build_fox() -> Target:
    """The FoX adapter's Target: the cumsum kernel's autotuning natively, pinned to config 0 under the interpreter."""
    from ..kernels._backend import interpreter_active

    op = replace(FOX_OP, traits=_fox_traits())
    _, fn = _load(op)
    tuned = _fox_autotuned()
    index, note = None, ""
    if interpreter_active():
        index = 0
        note = f"; autotune pinned to config 0 [{_labels(tuned, 0)}] under the Triton interpreter"
    return _target(op, tuned, fn, index, pin_note=note)


@functools.lru_cache(maxsize=None)
def _fox_variants() -> tuple[tuple[str, Target], ...]:
    """One Target per distinct cumsum config label (BT, num_warps; configs differing only in num_stages compute the
    same sums and would share a label)."""
    from ..kernels._backend import autotune_configs

    op = replace(FOX_OP, traits=_fox_traits())
    _, fn = _load(op)
    tuned = _fox_autotuned()
    counts = [n for _, n in autotune_configs(tuned)]
    out, seen = [], set()
    for i in range(min(counts) if counts else 0):
        label = _labels(tuned, i)
        if label in seen:
            continue
        seen.add(label)
        out.append((label, _target(op, tuned, fn, i, suffix=f"[{label}]",
                                   pin_note=f"; autotune pinned to config {i} [{label}]")))
    return tuple(out)


register_adapter(Adapter(
    name=FOX_OP.adapter_name, spec_id=FOX_OP.spec_id, library=LIBRARY, distribution=DISTRIBUTION,
    doc=f"flash-linear-attention {FOX_OP.module}.{FOX_OP.function}: {FOX_OP.doc}",
    build=build_fox, variants=lambda: list(_fox_variants())))
