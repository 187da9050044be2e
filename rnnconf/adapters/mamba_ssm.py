"""Adapters for mamba-ssm (``pip install mamba-ssm``, 2.3.2.post1, built without its CUDA extensions:
``MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE pip install --no-build-isolation --no-deps mamba-ssm``).
mamba-ssm is called, never copied.

Loading without the CUDA extension: ``mamba_ssm/__init__.py`` imports ``selective_scan_interface``, which imports the
compiled ``selective_scan_cuda`` at module level, so a plain ``import mamba_ssm.ops.triton.ssd_combined`` fails on a
CPU-only build.  :func:`_module` therefore registers the packages ``mamba_ssm``, ``mamba_ssm.ops``,
``mamba_ssm.ops.triton``, ``mamba_ssm.modules`` and ``mamba_ssm.utils`` in ``sys.modules`` as bare namespace modules
whose ``__path__`` is the installed package's directory (none of their ``__init__`` files runs), and then imports the
pure-torch and Triton modules through the normal machinery.  Where the real package is already imported (a CUDA
build), it is used as it is.

Calling on the CPU: mamba's Triton wrappers enter ``torch.cuda.device(x.device.index)``, which raises for a CPU
tensor (index ``None``), and its backward reads ``torch.cuda.get_device_properties(dev).multi_processor_count``.
Each call, and its backward, runs with both answered for a CPU device (:func:`_cpu_device_shim`) and with every
autotuned kernel of the SSD modules pinned to its config 0 under the Triton interpreter
(:func:`rnnconf.kernels._backend.pin_autotune`); :mod:`._calling` re-enters both for the backward.

Targets (spec ``ssd``, the convention of ``Mamba2``'s call: ``dt_softplus=True``, ``dt_bias``, ``D``, no ``z``):

* ``mamba-ssm:mamba_chunk_scan_combined`` — ``ops/triton/ssd_combined.py``, the Triton chunk scan (chunk cumsum,
  chunk state, state passing, chunk scan kernels), chunk size 64 unless the call gives ``chunk_size``;
  ``initial_states`` and ``return_final_states``.  Traits ``accumulate=input``: the sums run in float32, but
  ``_chunk_scan_fwd_kernel`` casts its dot operands (cb·exp(ΔA)·Δ) to the input dtype and ``_state_passing_fwd``
  returns the passed chunk states in ``C.dtype``, so roundings in the input dtype sit inside the computation.
* ``mamba-ssm:ssd_minimal_discrete`` — ``modules/ssd_minimal.py``, the paper's Listing 1 in torch: it takes
  X = Δ·x, A = Δ·A per step, B and C per head, and asserts T % block_len == 0 (a dim rule on T); D and Δ are applied
  around it here exactly as the spec states them, in float64.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
import types

import torch
import torch.nn.functional as F

from ..spec.errors import Traits
from ..spec.targets import FLOAT_DTYPES, Target
from . import Adapter, register_adapter
from ._calling import call_within

LIBRARY = "mamba_ssm"
DISTRIBUTION = "mamba-ssm"
_PACKAGES = ("", "ops", "ops/triton", "modules", "utils")
_SSD_MODULES = ("ssd_combined", "ssd_bmm", "ssd_chunk_state", "ssd_state_passing", "ssd_chunk_scan")
CHUNK = 64


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def _module(name: str):
    """``mamba_ssm.<name>`` imported without running any package ``__init__`` (module docstring)."""
    full = f"{LIBRARY}.{name}"
    if full in sys.modules:
        return sys.modules[full]
    if LIBRARY not in sys.modules:
        spec = importlib.util.find_spec(LIBRARY)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"{LIBRARY} is not installed (pip install {DISTRIBUTION})")
        root = list(spec.submodule_search_locations)[0]
        for sub in _PACKAGES:
            pkg = ".".join([LIBRARY] + [p for p in sub.split("/") if p])
            if pkg not in sys.modules:
                path = os.path.join(root, *sub.split("/")) if sub else root
                m = types.ModuleType(pkg)
                m.__path__ = [path]
                m.__spec__ = importlib.machinery.ModuleSpec(pkg, None, is_package=True)
                m.__spec__.submodule_search_locations = [path]
                sys.modules[pkg] = m
    return importlib.import_module(full)


CPU_SM_COUNT = 4  # what the backward's grid split reads as the multiprocessor count of a CPU "device"


@contextlib.contextmanager
def _cpu_device_shim():
    """``torch.cuda.device(None)`` (a CPU tensor's index) as a no-op, and ``torch.cuda.get_device_properties`` of
    a CPU device as ``multi_processor_count = CPU_SM_COUNT`` (mamba's backward splits its dB/dC reductions by it: a
    different summation order, nothing else); CUDA arguments go to torch's own."""
    real_device, real_props = torch.cuda.device, torch.cuda.get_device_properties

    def device(index):
        return contextlib.nullcontext() if index is None else real_device(index)

    def props(dev=None):
        if dev is not None and torch.device(dev).type == "cpu":
            return types.SimpleNamespace(multi_processor_count=CPU_SM_COUNT)
        return real_props(dev)

    torch.cuda.device, torch.cuda.get_device_properties = device, props
    try:
        yield
    finally:
        torch.cuda.device, torch.cuda.get_device_properties = real_device, real_props


def _context(modules):
    from ..kernels._backend import interpreter_active, pin_autotune

    @contextlib.contextmanager
    def context():
        with contextlib.ExitStack() as st:
            st.enter_context(_cpu_device_shim())
            if interpreter_active():
                for m in modules:
                    st.enter_context(pin_autotune(m, 0))
            yield

    return context


def _chunk_scan_call():
    sc = _module("ops.triton.ssd_combined")
    context = _context([_module(f"ops.triton.{m}") for m in _SSD_MODULES])

    def run(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, chunk_size):
        out = sc.mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=D, dt_bias=dt_bias,
                                           initial_states=initial_state, dt_softplus=True,
                                           return_final_states=output_final_state)
        return out if output_final_state else (out, None)

    def fn(x, dt, A, B, C, D, dt_bias, initial_state=None, output_final_state=False, cu_seqlens=None,
           chunk_size=None):
        if cu_seqlens is not None:
            raise NotImplementedError("varlen is not adapted (mamba's needs seq_idx and return_varlen_states)")
        y, fin = call_within(run, context, (x, dt, A, B, C, D, dt_bias, initial_state, output_final_state,
                                            int(chunk_size or CHUNK)), {})
        return y, fin

    fn.__name__ = "mamba_chunk_scan_combined"
    return fn


def _minimal_call():
    mini = _module("modules.ssd_minimal")

    def fn(x, dt, A, B, C, D, dt_bias, initial_state=None, output_final_state=False, cu_seqlens=None,
           chunk_size=None):
        if cu_seqlens is not None:
            raise NotImplementedError("ssd_minimal_discrete has no varlen form")
        R = x.shape[2] // B.shape[2]
        dl = F.softplus(dt + dt_bias)
        Bh, Ch = (v.repeat_interleave(R, 2) for v in (B, C))
        h0 = initial_state[:, None] if initial_state is not None else None
        block = int(chunk_size or _block(x.shape[1]))
        y, fin = mini.ssd_minimal_discrete(x * dl[..., None], A * dl, Bh, Ch, block, initial_states=h0)
        return y + D[:, None] * x, (fin if output_final_state else None)

    fn.__name__ = "ssd_minimal_discrete"
    return fn


def _block(T: int) -> int:
    """ssd_minimal's block length for a call of T steps: the largest of 16, 8, 4, 2, 1 dividing T."""
    return next(b for b in (16, 8, 4, 2, 1) if T % b == 0)


_FEATURES = frozenset({"initial_state", "final_state", "grad"})


def build_chunk_scan() -> Target:
    _module("ops.triton.ssd_combined")
    return Target("ssd", "mamba-ssm:mamba_chunk_scan_combined", _chunk_scan_call(), kind="triton",
                  traits=Traits(accumulate=None, cumsum="chunk", chunk_size=CHUNK, layout_dependent=True),
                  dtypes=FLOAT_DTYPES, supports=_FEATURES, extras={"chunk_kw": "chunk_size"},
                  doc=f"mamba-ssm {_version()} ops.triton.ssd_combined.mamba_chunk_scan_combined(dt_softplus=True), "
                      f"chunk_size {CHUNK} (any per call); autotune pinned to config 0 under the Triton interpreter")


def build_minimal() -> Target:
    _module("modules.ssd_minimal")
    return Target("ssd", "mamba-ssm:ssd_minimal_discrete", _minimal_call(), kind="external",
                  traits=Traits(accumulate=None, cumsum="chunk", chunk_size=16, layout_dependent=True),
                  dtypes=FLOAT_DTYPES, supports=_FEATURES,
                  doc=f"mamba-ssm {_version()} modules.ssd_minimal.ssd_minimal_discrete (Listing 1 of the Mamba-2 "
                      f"paper), block length the largest of 16/8/4/2/1 dividing T; Δ, D applied around it")


for _name, _build, _doc in (
        ("mamba-ssm:mamba_chunk_scan_combined", build_chunk_scan, "mamba-ssm's Triton SSD chunk scan"),
        ("mamba-ssm:ssd_minimal_discrete", build_minimal, "mamba-ssm's minimal torch SSD (Listing 1)")):
    register_adapter(Adapter(name=_name, spec_id="ssd", library=LIBRARY, distribution=DISTRIBUTION, doc=_doc,
                             build=_build))
