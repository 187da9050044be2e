"""Adapters: third-party implementations of rnnconf specs, wrapped as :class:`~rnnconf.spec.targets.Target` records.

An adapter maps a spec's canonical signature onto a library's function and declares, honestly, what the library
supports and how it evaluates (its error-model traits, read from the library's kernel source).  The library is
imported only when an adapter is built, so listing adapters is cheap and works where the library is absent.

    list_adapters()               -> [{"name", "spec", "doc", "available", "reason"}]
    get_adapter(name)             -> Target        (KeyError: unknown name; ImportError: library missing)
    autotune_variants(name)       -> [(label, Target)]  one Target pinned to each autotune config
    ADAPTERS[name]()              -> Target        (each value is a factory)

Autotuned Triton kernels cannot be benchmarked under the Triton interpreter, so adapters pin them to one config
there (see :func:`rnnconf.kernels._backend.pin_autotune`); :func:`autotune_variants` checks every config on its own,
because configs that share an output buffer can hide a broken one (triton #9230).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Callable

from .._registry import Registry
from ..spec.targets import Skip, Target


@dataclass(frozen=True)
class Adapter:
    """One known third-party implementation.  Calling it builds the :class:`Target` (importing the library)."""

    name: str
    spec_id: str
    library: str  # the import name whose presence makes the adapter available ("fla")
    distribution: str  # the package that provides it ("fla-core")
    doc: str
    build: Callable[[], Target]
    variants: Callable[[], list] | None = None

    def __call__(self) -> Target:
        return self.build()

    def unavailable(self) -> str | None:
        """Why this adapter cannot be built here, or ``None`` (decided without importing the library)."""
        from ..spec import all_specs

        if self.spec_id not in {s.id for s in all_specs()}:
            return f"rnnconf has no spec {self.spec_id!r}"
        if importlib.util.find_spec(self.library) is None:
            return f"{self.library} is not installed (pip install {self.distribution})"
        return None

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


ADAPTERS: Registry = Registry("adapter")


def register_adapter(adapter: Adapter) -> Adapter:
    return ADAPTERS.add(adapter.name, adapter)


def _lookup(name: str) -> Adapter:
    adapter = ADAPTERS.lookup(name)
    why = adapter.unavailable()
    if why is not None:
        raise ImportError(f"adapter {name!r} is unavailable: {why}")
    return adapter


def list_adapters() -> list[dict]:
    """Every known adapter with its spec, description and whether it can be built here (and why not)."""
    out = []
    for name in sorted(ADAPTERS):
        a = ADAPTERS[name]
        why = a.unavailable()
        ver = a.version()
        doc = f"{a.doc} [{a.distribution} {ver}]" if ver else a.doc
        out.append({"name": name, "spec": a.spec_id, "doc": doc, "available": why is None, "reason": why or ""})
    return out


def get_adapter(name: str) -> Target:
    """The :class:`Target` of adapter ``name``.  Raises ``KeyError`` for an unknown name and ``ImportError`` when
    the library is not installed or lacks the function (one-line messages)."""
    return _lookup(name).build()


def autotune_variants(name: str) -> list[tuple[str, Target]]:
    """``[(label, Target)]``: one Target per autotune config of the adapter's kernels, each pinned to that config
    (natively too) and named ``<name>[<label>]``; ``[]`` when the adapter's kernels are not autotuned."""
    adapter = _lookup(name)
    return adapter.variants() if adapter.variants is not None else []


def interpreter_skips(target: Target) -> tuple[Skip, ...]:
    """Under the Triton interpreter, call ``target`` once per dtype on tiny zero inputs (and its backward when it
    supports gradients).  An ``InterpreterError`` there is a limit of the interpreter, not a verdict on the target: it
    becomes a :class:`Skip` for that dtype naming the error (``"*"`` for the forward, ``"backward"`` — every property
    that needs gradients — for the backward), so properties report *skipped* with that reason instead of blaming the
    target.  bfloat16 is left to
    the backend self-test (:mod:`rnnconf.kernels._backend`).  Natively, or where the probe runs, no skip."""
    from ..kernels._backend import interpreter_active

    if target.kind != "triton" or not interpreter_active():
        return ()
    import torch

    skips = []
    for dtype in target.dtypes:
        if dtype != torch.bfloat16:
            skips.extend(_probe(target, dtype))
    return tuple(skips)


def _probe(target: Target, dtype) -> tuple[Skip, ...]:
    import torch

    from ..kernels._backend import interpreter_limit
    from ..spec import get_spec
    from ..spec.base import dim_size

    spec = get_spec(target.spec_id)
    dims = {n: min(d.hi, max(d.lo, 2)) for n, d in spec.dims.items()}
    grad = "grad" in target.supports
    inputs = [torch.zeros([dim_size(s, dims) for s in a.shape], dtype=dtype,
                          requires_grad=grad and a.differentiable) for a in spec.inputs]
    kwargs = spec.static_values(dims)
    if spec.state_arg is not None:
        kwargs["output_final_state"] = "final_state" in target.supports
    where = "*"
    try:
        out = target.fn(*inputs, **kwargs)
        where = "backward"
        outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,))
                if isinstance(o, torch.Tensor) and o.requires_grad]
        if grad and outs:
            torch.autograd.grad(sum(o.sum() for o in outs), [t for t in inputs if t.requires_grad],
                                allow_unused=True)
    except Exception as e:  # noqa: BLE001 — unless the interpreter's limit, the target's own error: the properties say
        limit = interpreter_limit(e, context=f" in {str(dtype).replace('torch.', '')}")
        what = "its backward" if where == "backward" else "it"
        return (Skip(where, f"{target.id}: {what} {limit}", dtype),) if limit else ()
    return ()


# registers the flash-linear-attention, FlashRNN, pararnn-torch and torch.nn adapters (each library imported only
# in build)
from . import fla, flashrnn, mamba_ssm, pararnn, torch_nn  # noqa: E402,F401
