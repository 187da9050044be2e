"""The smoke call: one call of the target on the smallest valid example of its spec, before any property runs.

Every size symbol at its smallest value (``Dim.lo``: B = T = D = 1 …), every input realised from its domain (the
target's narrower domain where it declares one) with a fixed seed, in the target's primary dtype, with the final
state asked for when the target returns one.  What it decides:

* ``ok`` — the target can be called at all.  A call that raises (wrong signature, a kernel that cannot launch), or
  returns the wrong structure (arity, shape, dtype: :class:`~rnnconf.properties.calling.ContractViolation`) makes
  the whole target ``uncallable``: one verdict, one message, instead of the same error once per property.
* ``hung`` — the call did not return within the per-call timeout: no property calls it again.
* ``triton`` — whether the call launched a Triton kernel (observed at run time, not read from the source).
* ``grad`` — whether the outputs carry autograd history when the differentiable inputs require grad.  ``False``
  means a forward-only target: its gradient properties are not applicable (with that reason), never errored.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import torch

from . import strategies as S
from .calling import PropertyFailure, TargetRaised, TargetTimeout, call_target

SMOKE_PROP = "smoke-call"  # the ``prop`` of the single verdict an uncallable target gets


@dataclass
class SmokeResult:
    ok: bool
    reason: str = ""
    hung: bool = False
    triton: bool | None = None  # None: could not be observed (Triton not installed, or the call failed first)
    grad: bool | None = None  # None: not asked (the target does not claim gradients, or the call failed first)
    desc: str = ""
    seconds: float = 0.0
    crashed: bool = False  # the isolated worker died during the smoke call (segfault, abort, CUDA fault)

    def to_json(self) -> dict:
        return asdict(self)


def smallest_example(spec, target, dtype: torch.dtype) -> dict:
    """``{"dims", "inputs", "initial_state"}``: every dim at its lower end, inputs from a fixed seed."""
    dims = {name: max(1, d.lo) for name, d in spec.dims.items()}
    dims = {k: (target.dim_rules[k].fit(v, spec.dims[k].lo, spec.dims[k].hi) if k in target.dim_rules else v)
            for k, v in dims.items()}
    unit = spec.extra.get("unit_rows", ())
    inputs = {}
    for i, a in enumerate(spec.inputs):
        dom = target.domain_overrides.get(a.name) or a.domain
        v = S.round_to(S.realize(dom, S.shape_of(a.shape, dims), 1234 + i, 1.0, 0.0, ()), dtype, dom)
        inputs[a.name] = S.unit_rows(v, dtype) if a.name in unit else v
    inputs.update(spec.static_values(dims))
    return {"dims": dims, "inputs": inputs, "initial_state": None}


def _observer():
    try:
        from ..kernels._backend import observe_triton_launches
    except ImportError:
        return contextlib.nullcontext(None)
    return observe_triton_launches()


def _dtype_tolerant():
    """A wrong output dtype is a dtype-contract finding the properties judge, not a reason to stop the run."""
    from . import calling

    f = getattr(calling, "collect_dtype_findings", None)
    return f() if f is not None else contextlib.nullcontext()


def _carries_grad(raw: dict) -> bool:
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in raw.values())


def smoke_call(spec, target, device: str = "cpu", dtype: torch.dtype | None = None) -> SmokeResult:
    """Call ``target`` once on :func:`smallest_example`; never raises for the target's misbehaviour."""
    from .runner import dtype_unrunnable, primary_dtype

    if dtype is None:  # the primary dtype, or the first one this backend can run the target in
        runnable = [d for d in target.dtypes
                    if not target.skip_reason(SMOKE_PROP, d) and not dtype_unrunnable(target, d, device)]
        if not runnable:  # nothing can be called here: every property says why (skipped), nothing is blamed
            d = target.dtypes[0]
            why = target.skip_reason(SMOKE_PROP, d) or dtype_unrunnable(target, d, device)
            return SmokeResult(ok=True, reason=f"not called: no claimed dtype can run here ({why})")
        dtype = primary_dtype(target) if primary_dtype(target) in runnable else runnable[0]
    ex = smallest_example(spec, target, dtype)
    final = spec.has_state and "final_state" in target.supports
    t0 = time.perf_counter()
    r = SmokeResult(ok=True)
    try:
        with _observer() as obs, _dtype_tolerant():
            call = call_target(spec, target, ex["inputs"], dtype, device, output_final_state=final)
            r.desc = call.desc
            if "grad" in target.supports and any(a.differentiable for a in spec.inputs):
                try:
                    gcall = call_target(spec, target, ex["inputs"], dtype, device, output_final_state=final,
                                        requires_grad=True)
                    r.grad = _carries_grad(gcall.raw)
                except (TargetRaised, PropertyFailure):
                    r.grad = None  # the gradient properties will say what went wrong, with their own example
        r.triton = None if obs is None else bool(obs.launched)
    except TargetTimeout as e:
        r.ok, r.hung, r.reason = False, True, str(e)
    except TargetRaised as e:
        from ..kernels._backend import interpreter_limit

        limit = interpreter_limit(e.exc)  # the interpreter's limit, not the target's: each property skips with it
        r.ok, r.reason = (True, f"smoke call: {limit}") if limit else \
            (False, f"smoke call on the smallest valid example failed: {e}")
    except PropertyFailure as e:  # ContractViolation: wrong arity / shape / dtype of the outputs
        r.ok, r.reason = False, f"smoke call on the smallest valid example returned the wrong structure: {e}"
    except (SystemExit, GeneratorExit) as e:  # not Exceptions: calling.py lets them through
        r.ok, r.reason = False, (f"smoke call on the smallest valid example failed: {target.id}(…) raised "
                                 f"{type(e).__name__}: {e}")
    r.seconds = time.perf_counter() - t0
    return r
