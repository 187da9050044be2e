"""Calling a target through a spec's canonical signature, and turning what comes back into precise verdicts.

A call never lets a target's misbehaviour escape as an arbitrary exception: raising becomes :class:`TargetRaised`,
a wrong return shape/dtype/arity :class:`ContractViolation` (both carry the call description), a hang past the
per-call timeout :class:`TargetTimeout`.  Under :func:`collect_dtype_findings` (the runner) a wrong dtype is instead
recorded as a dtype-contract finding and the output judged cast to the contract's dtype.
``poisoned_allocations`` fills every ``torch.empty*`` allocation made during the call with NaN (as
flash-linear-attention's test suite does), so unwritten outputs show.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import threading
import traceback
from dataclasses import dataclass

import torch

from ..spec.base import Spec
from ..spec.targets import Target


class PropertyFailure(AssertionError):
    """The target computed something the spec forbids.  ``observed``/``bound`` feed the report.

    ``numeric``: set by :meth:`Ctx.expect_close` when the failure is an error beyond the bound against an expected
    value (what the failure classes and the same-precision baseline need, see :mod:`.classify`); ``None`` for a
    structural violation (always a ``defect``).  ``profile_t``: max err/bound per time step of a failing sequence
    output; ``baseline``: the naive same-precision baseline's error at the reported element (set by the runner)."""

    def __init__(self, message: str, observed: float | None = None, bound: float | None = None,
                 numeric: dict | None = None, profile_t: list[float] | None = None):
        super().__init__(message)
        self.observed, self.bound = observed, bound
        self.numeric, self.profile_t = numeric, profile_t
        self.baseline: float | None = None


class ContractViolation(PropertyFailure):
    """Wrong number, shape or dtype of outputs."""


class TargetRaised(Exception):
    def __init__(self, call: str, exc: BaseException):
        tb = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        super().__init__(f"{call} raised {tb}")
        self.call, self.exc = call, exc


class TargetTimeout(Exception):
    pass


_DTYPE_FINDINGS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rnnconf_dtype_findings", default=None)


@contextlib.contextmanager
def collect_dtype_findings():
    """Within the block a wrong output/state dtype does not raise :class:`ContractViolation`: it is recorded in the
    yielded dict ((output, got, want) -> message) and the output is judged cast to the dtype the contract names."""
    sink: dict = {}
    tok = _DTYPE_FINDINGS.set(sink)
    try:
        yield sink
    finally:
        _DTYPE_FINDINGS.reset(tok)


CALL_TIMEOUT_S = float(os.environ.get("RNNCONF_CALL_TIMEOUT", "300"))


@contextlib.contextmanager
def _timeout(seconds: float, what: str):
    """SIGALRM-based timeout (main thread only; elsewhere no timeout — use --isolate for hard hangs)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum, frame):
        raise TargetTimeout(f"{what} did not return within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def poisoned_allocations():
    """Within the block, torch.empty / empty_like / Tensor.new_empty return NaN-filled float tensors."""
    orig = (torch.empty, torch.empty_like, torch.Tensor.new_empty)

    def fill(t):
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            t.fill_(float("nan"))
        return t

    torch.empty = lambda *a, **k: fill(orig[0](*a, **k))
    torch.empty_like = lambda *a, **k: fill(orig[1](*a, **k))
    torch.Tensor.new_empty = lambda self, *a, **k: fill(orig[2](self, *a, **k))
    try:
        yield
    finally:
        torch.empty, torch.empty_like, torch.Tensor.new_empty = orig


def _desc(t) -> str:
    if t is None:
        return "None"
    if isinstance(t, torch.Tensor):
        return f"{str(t.dtype).replace('torch.', '')}{list(t.shape)}"
    return repr(t)


def describe_call(target: Target, args: dict) -> str:
    inner = ", ".join(f"{k}={_desc(v)}" for k, v in args.items())
    return f"{target.id}({inner})"


def expected_dtype(out_rule: str, in_dtype: torch.dtype) -> torch.dtype:
    if out_rule == "complex":
        return torch.complex128 if in_dtype == torch.float64 else torch.complex64
    return in_dtype


@dataclass
class Call:
    """Result of one call: outputs as float64 (or complex128) CPU tensors keyed by output name, the raw outputs,
    and the call's description for messages."""

    outputs: dict
    raw: dict
    desc: str
    leaves: dict = None  # inputs that require grad (name -> tensor), for backward checks


def call_target(spec: Spec, target: Target, inputs: dict, dtype: torch.dtype, device: str = "cpu",
                initial_state: torch.Tensor | None = None, output_final_state: bool = True,
                cu_seqlens: list[int] | None = None, requires_grad: bool = False, poison: bool = False,
                extra_kwargs: dict | None = None, raw_return: bool = False, as_given: dict | None = None) -> Call:
    """Cast float64 ``inputs`` to ``dtype`` on ``device``, call the target, validate the outputs' contract
    (``raw_return``: return what the target returned, unvalidated — for spec-specific extra returns).
    ``as_given``: tensors (by argument name, ``"initial_state"`` included) already in the call's dtype and device,
    passed exactly as they are — not cast, not cloned — e.g. the non-contiguous views of the strided-inputs
    property; ``inputs``/``initial_state`` then only describe the values."""
    as_given = as_given or {}
    args = {}
    for a in spec.inputs:
        if a.name not in inputs:
            continue
        v = as_given[a.name] if a.name in as_given else inputs[a.name].to(device=device, dtype=dtype).clone()
        if requires_grad and a.differentiable:
            v.requires_grad_(True)
        args[a.name] = v
    kwargs = {a.name: (inputs[a.name] if a.choices else int(inputs[a.name])) for a in spec.statics if a.name in inputs}
    state = spec.state_arg
    if state is not None:
        h0 = None
        if "initial_state" in as_given:
            h0 = as_given["initial_state"]
        elif initial_state is not None:
            h0 = initial_state.to(device=device,
                                  dtype=expected_dtype(spec.extra.get("state_dtype", "input"), dtype)).clone()
        if h0 is not None:
            if requires_grad:
                h0.requires_grad_(True)
        kwargs["initial_state"] = h0
        kwargs["output_final_state"] = output_final_state
    if cu_seqlens is not None:
        kwargs["cu_seqlens"] = torch.tensor(cu_seqlens, dtype=torch.int32, device=device)
    kwargs.update(extra_kwargs or {})
    desc = describe_call(target, {**args, **kwargs})
    cu_before = kwargs["cu_seqlens"].clone() if cu_seqlens is not None else None
    try:
        with _timeout(CALL_TIMEOUT_S, desc), (poisoned_allocations() if poison else contextlib.nullcontext()):
            ret = target.fn(*args.values(), **kwargs)
    except (TargetTimeout, KeyboardInterrupt):
        raise
    except Exception as e:  # the target's own failure: becomes an 'errored' verdict with this description
        raise TargetRaised(desc, e) from e
    if cu_before is not None and not torch.equal(cu_before, kwargs["cu_seqlens"]):
        raise ContractViolation(f"{desc} modified its cu_seqlens argument in place: "
                                f"{cu_before.tolist()} became {kwargs['cu_seqlens'].tolist()}")
    if raw_return:
        return ret
    conv, raw = _validate(spec, target, ret, args, kwargs, dtype, output_final_state, cu_seqlens, desc)
    leaves = {k: v for k, v in args.items() if v.requires_grad}
    if kwargs.get("initial_state") is not None and kwargs["initial_state"].requires_grad:
        leaves["initial_state"] = kwargs["initial_state"]
    return Call(conv, raw, desc, leaves)


def _validate(spec, target, ret, args, kwargs, dtype, output_final_state, cu_seqlens, desc):
    outs = list(spec.outputs)
    if not isinstance(ret, (tuple, list)):
        ret = (ret,)
    if state_expected := any(o.state for o in outs):
        if len(ret) != len(outs):
            raise ContractViolation(f"{desc} returned {len(ret)} values, but the spec's signature returns "
                                    f"{len(outs)} ({', '.join(o.name for o in outs)})")
    raw, conv = {}, {}
    dims = _dims_from_args(spec, args)
    n_seqs = len(cu_seqlens) - 1 if cu_seqlens is not None else None
    for o, v in zip(outs, ret):
        if o.state and not output_final_state:
            continue
        if o.state and state_expected and v is None:
            raise ContractViolation(f"{desc}: {o.name} is None although output_final_state=True")
        if not isinstance(v, torch.Tensor):
            raise ContractViolation(f"{desc}: {o.name} is {type(v).__name__}, expected a tensor")
        want_shape = tuple((n_seqs if (o.state and s == "B" and n_seqs) else dims[s]) for s in o.shape)
        if tuple(v.shape) != want_shape:
            raise ContractViolation(f"{desc}: {o.name}.shape={tuple(v.shape)}, but should be {want_shape} "
                                    f"({'×'.join(o.shape)})")
        want_dtype = expected_dtype(o.dtype, dtype)
        if v.dtype != want_dtype:
            msg = f"{desc}: {o.name}.dtype={v.dtype}, but should be {want_dtype}"
            sink = _DTYPE_FINDINGS.get()
            if sink is None:
                raise ContractViolation(msg)
            # a dtype-contract finding; the numeric verdict is still judged, on the output cast to the contract's dtype
            sink.setdefault((o.name, str(v.dtype), str(want_dtype)), msg)
            v = v.to(want_dtype)
        raw[o.name] = v
        d = v.detach().to("cpu")
        conv[o.name] = d.to(torch.complex128) if d.is_complex() else d.to(torch.float64)
    return conv, raw


def _dims_from_args(spec, args):
    dims = {}
    for a in spec.inputs:
        if a.name in args:
            for s, n in zip(a.shape, args[a.name].shape):
                dims.setdefault(s, n)
    for name, d in spec.dims.items():  # fixed sizes no input carries (e.g. the state count S)
        if d.lo == d.hi:
            dims.setdefault(name, d.lo)
    return dims  # product symbols ("T*N") land here too; outputs use plain names
