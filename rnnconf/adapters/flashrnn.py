"""Adapters for FlashRNN (``pip install flashrnn``, PyPI 1.0.8, imported as ``flashrnn``): one adapter per (backend,
cell) that FlashRNN implements, named ``flashrnn:<backend>:<cell>``.  FlashRNN is called, never copied.

Conventions, read from flashrnn 1.0.8's source (paths under ``flashrnn/flashrnn/``) and checked numerically against
rnnconf's torch forms (float64, exact to 2e-16):

* Entry point ``flashrnn(Wx, R, b, states=None, function, config=None, backend="cuda_fused", dtype="bfloat16")``
  (``flashrnn.py:1115``).  Its default layouts (``FlashRNNConfig``, ``flashrnn.py:166-174``) are rnnconf's: Wx
  ``BTGHD``, R ``GHDP`` (gate, head, out D, in P), b ``GHD``; the states ``SBTHD``.
* R[g, h, out, in], pre = Wx + Σ_in R[g, h, out, in]·h[in] + b: vanilla permutes R to ``HPGD`` (``flashrnn.py:295``)
  and forms ``h.transpose(0, 1).bmm(R.reshape(H, P, G·D))`` (``vanilla/__init__.py:49-57``); vanilla_fwbw
  ``rearrange(R, "ngr nh dout din -> 1 nh din (ngr dout)")`` then ``h @ R`` (``vanilla_fwbw/fw.py:227-231``);
  triton_fused ``R -> nh ngr dhin dhout`` and ``tl.dot(h, R)`` (``triton_fused/slstm_fw.py:282, 508``).
* Initial states: ``[S, B, 1, H, D]`` (the ``SBTHD`` output layout with T = 1, permuted back by
  ``_permute_output_backward``, ``flashrnn.py:1131``); ``None`` gives zeros in Wx's dtype (``_zero_state``,
  ``flashrnn.py:928-955``).  Return value: ``(states, last_states)``: every state after every step ``[S, B, T, H,
  D]`` (h is ``states[0]``) and the last ``[S, B, 1, H, D]`` (``flashrnn.py:1135-1136``).  The adapter passes
  ``initial_state.unsqueeze(2)`` and returns ``(states[0], last_states[:, :, 0])``.
* Gate and state orders (``rnn_function_registry``, ``flashrnn.py:50-72``; pointwise ``vanilla/*.py``): lstm (i, f,
  z, o; h, c), elman (g; h), slstm (i, f, z, o; h, c, n, m) — rnnconf's.  gru: Wx (r, z, n) as rnnconf, but R is
  (n, r, z) and b is (n_rec, r, z, n_in) (``num_gates_r = 3, num_gates_t = 4``; ``vanilla/gru.py:17-29``:
  ``h' = z·h + (1 − z)·tanh(Wx[n] + b[n_in] + r·(R[n]h + b[n_rec]))``).  The adapter passes ``R[[n, r, z]]`` and
  ``b[[n, r, z]]`` with n_in = 0: rnnconf's b[n] is the recurrent bias b_hn, so the math is identical.
* ``dtype`` (``flashrnn.py:1123``): the *kernel* dtype, ``Literal["bfloat16", "float16", "float32"]``
  (``flashrnn.py:39``).  vanilla ignores it (computes in the inputs' dtype, float64 included); vanilla_fwbw and
  triton_fused use it to pick an autograd Function whose ``custom_fwd(device_type="cuda", cast_inputs=...)`` casts
  only inside CUDA autocast (a no-op on the CPU) and raise ``KeyError: 'float64'`` for float64
  (``vanilla_fwbw/fwbw.py:108-118``, ``triton_fused/fwbw.py:114-124``; triton's ``torch2triton_dtype`` has no float64,
  ``triton_fused/triton_utils.py:5-9``).  The adapter passes the input dtype's name; float64 is claimed by vanilla
  only.  Outputs and the final state come back in the input dtype for every backend.

Backends and cells: ``vanilla`` (lstm, gru, elman, slstm: a torch loop, autograd), ``vanilla_fwbw`` (lstm, slstm only,
``flashrnn.py:1003-1031``; torch loop, hand-written BPTT ``vanilla_fwbw/bw.py``), ``triton_fused`` (lstm, slstm only,
``flashrnn.py:1061-1086`` — another cell leaves ``fn`` unbound: ``UnboundLocalError``), ``cuda`` (all four) and
``cuda_fused`` (lstm, elman, slstm; gru is rerouted to ``cuda``, ``flashrnn.py:281-285``, so it has no adapter).
The CUDA backends compile C++/CUDA with ``torch.utils.cpp_extension`` at the first call: their adapters build only
where CUDA is available (``ImportError`` otherwise) and are never compiled here.

Traits (what each backend's source says):

* vanilla, vanilla_fwbw: every operation in the input dtype (``states_all`` is ``Wx.dtype``; matmul, exp, σ, tanh on
  the input tensors) — ``accumulate=None``; no cumulative log-gate sum; the backward (autograd, or
  ``vanilla_fwbw/bw.py`` reading the states and gates saved in ``Wx.dtype``) re-reads values at the precision they
  were computed in — ``saves=None``; torch matmul's reduction order may follow the strides — ``layout_dependent``.
* triton_fused: one program per (head, 16 batch rows); c, n, m and h in float32 registers, but h enters every
  recurrent ``tl.dot`` rounded to the input dtype (``matHtrans.to(DTYPE)``, ``slstm_fw.py:282-285``,
  ``lstm_fw.py:233-236``), Wx and R are read in the input dtype and every state is stored in it — so the recurrence's
  precision is the input dtype's, ``accumulate=None`` (as fla's chunk ops are declared); ``tl.dot`` at Triton's
  default precision (TF32 for float32 natively; plain float32 under the interpreter); the backward kernels re-read
  the states and gate pre-activations stored in the input dtype (``states_all``/``gates_all`` are ``Wx.dtype``) —
  ``saves="input"``.  The forward kernels are ``@triton.autotune``'d over one config (``ENABLE_AUTOTUNING = False``:
  siz_B=16, num_warps=4, ``slstm_fw.py:30-45``); the adapter pins it (a no-op that keeps the interpreter from ever
  benchmarking); the backward kernels are not autotuned.  Batch padded to a multiple of 16 with zero rows
  (``slstm_fw.py:470-489``).  **Shapes:** ``assert is_power_of_2(DH)`` (``slstm_fw.py:468``, ``lstm_fw.py:381``,
  ``slstm_bw.py:651``): D ∈ {1, 2, 4, …}; natively ``tl.dot`` also needs D ≥ 16.  Declared as the target's
  ``dim_rules["D"]`` (drawn head dims are fitted to it, boundary probes at other sizes left out and said) — a call
  outside it is a precondition FlashRNN states, not a verdict; the adapter never pads.
* cuda, cuda_fused (source only, not run): float32/float16/bfloat16 (``_python_dtype_to_cuda_dtype``,
  ``flashrnn.py:74-79``); half matmuls accumulate in half (``CUBLAS_COMPUTE_16F``, ``util/blas.cu:36``) —
  ``accumulate=None``; cuda_fused's float32 uses ``wmma::precision::tf32`` (``fused/flashrnn_fused_backward.cu:94``,
  forward tiling 16×16×8) — ``matmul=tf32``; both save states and gates in the kernel dtype — ``saves="input"``.

sLSTM, differences from rnnconf's spec read from the source (verdicts: ``docs/conformance/README.md``):
vanilla and vanilla_fwbw decide the first-step rule *batch-wide*: ``torch.where(torch.all(n == 0.0), ĩ, max(ĩ,
log σ(f̃) + m))`` (``vanilla/slstm.py:20``, ``vanilla_fwbw/fw.py:135``) where the spec, triton_fused
(``matNtrans == 0.0``, ``slstm_fw.py:297``) and the CUDA kernels (``eq_zero_g(n_cur)``,
``alternating/slstm_pointwise.cu:88``, ``fused/slstm_fused_pointwise.cuh:55``) decide per element; the first step's
f′ = exp(log σ(f̃) + m − ĩ) is not capped in vanilla, vanilla_fwbw and triton_fused (inf·0 = NaN in c once
ĩ < log σ(f̃) + m − log(max float)), where the CUDA kernels take ``min(1, exp(..))`` (``slstm_pointwise.cu:107``);
triton_fused forms log σ as ``tl.log(tl.sigmoid(f̃))`` (``slstm_fw.py:294``: −inf once σ underflows) and tanh as
(1 − e^{−2x})/(1 + e^{−2x}) (``slstm_fw.py:50``, ``lstm_fw.py:49``: inf/inf = NaN for x < −44.4); the hand-written
backwards (vanilla_fwbw, triton_fused) return 0 for the initial m and ignore the final m's gradient
(``vanilla_fwbw/bw.py:181``, ``triton_fused/slstm_bw.py:526``).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import logging
import os
import warnings
from dataclasses import dataclass, replace

import torch

from ..spec.errors import Traits
from ..spec.targets import POW2, DimRule, Target
from . import Adapter, interpreter_skips, register_adapter

LIBRARY = "flashrnn"
DISTRIBUTION = "flashrnn"
_FEATURES = frozenset({"initial_state", "final_state", "grad"})  # no varlen (FlashRNN has none)
_HALF_AND_F32 = (torch.float32, torch.float16, torch.bfloat16)
_ALL = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
_DTYPE_NAME = {torch.float64: "float64", torch.float32: "float32", torch.float16: "float16",
               torch.bfloat16: "bfloat16"}
# rnnconf's gate order -> FlashRNN's: GRU's R is (n, r, z) and its b (n_rec, r, z, n_in) (vanilla/gru.py)
_GRU_R = (2, 0, 1)


@dataclass(frozen=True)
class Backend:
    name: str
    cells: tuple
    kind: str  # "torch" | "triton" | "external" (CUDA extension)
    dtypes: tuple
    traits: Traits | None  # None: decided when built (triton: the native matmul precision)
    doc: str
    triton_modules: tuple = ()  # modules of the autotuned forward kernels (pinned under the interpreter)
    needs_cuda: bool = False
    dims: tuple = ()  # (dim, DimRule under the interpreter, DimRule natively) where narrower than the spec


_TORCH_TRAITS = Traits(accumulate=None, cumsum="none", layout_dependent=True)

BACKENDS = (
    Backend("vanilla", ("lstm", "gru", "elman", "slstm"), "torch", _ALL, _TORCH_TRAITS,
            "torch loop over t in the input dtype (bmm per step), autograd backward; sLSTM's first-step rule "
            "decided batch-wide (torch.all(n == 0))"),
    Backend("vanilla_fwbw", ("lstm", "slstm"), "torch", _HALF_AND_F32, _TORCH_TRAITS,
            "torch loop over t in the input dtype, hand-written BPTT (vanilla_fwbw/bw.py); float64 refused by the "
            "dtype registry; sLSTM's first-step rule decided batch-wide"),
    Backend("triton_fused", ("lstm", "slstm"), "triton", _HALF_AND_F32, None,
            "one Triton program per (head, 16 batch rows) runs the time loop, float32 state in registers, h rounded "
            "to the input dtype for each tl.dot; Triton backward kernels; D a power of 2",
            triton_modules=("flashrnn.flashrnn.triton_fused.lstm_fw", "flashrnn.flashrnn.triton_fused.slstm_fw"),
            dims=(("D", POW2, DimRule("a power of 2 ≥ 16 (flashrnn asserts is_power_of_2(DH); tl.dot needs 16)",
                                      lambda n: n >= 16 and POW2.accepts(n))),)),
    Backend("cuda", ("lstm", "gru", "elman", "slstm"), "external", _HALF_AND_F32,
            Traits(accumulate=None, cumsum="none", saves="input"),
            "CUDA extension (alternating cuBLAS matmul / pointwise kernels), compiled at the first call",
            needs_cuda=True),
    Backend("cuda_fused", ("lstm", "elman", "slstm"), "external", _HALF_AND_F32,
            Traits(accumulate=None, cumsum="none", matmul="tf32", saves="input"),
            "CUDA extension (one fused persistent kernel, wmma), compiled and autotuned at the first call; gru is "
            "rerouted to the cuda backend by FlashRNN, so it has no adapter here", needs_cuda=True),
)


def adapter_name(backend: str, cell: str) -> str:
    return f"{LIBRARY}:{backend}:{cell}"


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


@contextlib.contextmanager
def _quiet():
    """flashrnn imports torch.utils.cpp_extension, which logs "No CUDA runtime is found" on a CPU machine."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        log.setLevel(level)


def _load(name: str):
    try:
        with _quiet():
            module = importlib.import_module("flashrnn.flashrnn.flashrnn")
    except Exception as e:  # noqa: BLE001 — any failure to import flashrnn makes the adapter unavailable
        first = (str(e).strip().splitlines() or [""])[0]
        raise ImportError(f"adapter {name!r} cannot import flashrnn: {type(e).__name__}: {first}") from None
    fn = getattr(module, "flashrnn", None)
    if fn is None:
        raise ImportError(f"adapter {name!r}: flashrnn {_version()} has no flashrnn.flashrnn")
    return fn


def _native_matmul() -> str:
    from ..kernels._backend import interpreter_active

    if interpreter_active():
        return "ieee"  # the interpreter's tl.dot is a numpy float32 matmul
    return "ieee" if os.environ.get("TRITON_F32_DEFAULT", "").strip().lower() == "ieee" else "tf32"


def _pinned(modules, index: int | None):
    if index is None or not modules:
        return contextlib.nullcontext()
    from ..kernels._backend import pin_autotune

    stack = contextlib.ExitStack()
    for m in modules:
        stack.enter_context(pin_autotune(m, index))
    return stack


def to_flashrnn(cell: str, Wx, R, b):
    """rnnconf's (Wx, R, b) in FlashRNN's gate packing: the identity but for gru (R as (n, r, z); b as (n_rec, r, z,
    n_in) with n_in = 0, rnnconf's b[n] being the recurrent bias)."""
    if cell != "gru":
        return Wx, R, b
    Rf = torch.stack([R[g] for g in _GRU_R])
    bf = torch.stack([b[g] for g in _GRU_R] + [torch.zeros_like(b[2])])
    return Wx, Rf, bf


def _make_call(fr, backend: Backend, cell: str, modules, index):
    def call(Wx, R, b, initial_state=None, output_final_state=False):
        Wx_, R_, b_ = to_flashrnn(cell, Wx, R, b)
        states = None if initial_state is None else initial_state.unsqueeze(2)  # [S, B, 1, H, D]
        with _quiet(), _pinned(modules, index):
            all_states, last = fr(Wx_, R_, b_, states, function=cell, backend=backend.name,
                                  dtype=_DTYPE_NAME.get(Wx.dtype, str(Wx.dtype)))
        h = all_states[0]  # [B, T, H, D]
        return h, (last[:, :, 0] if output_final_state else None)

    call.__name__ = call.__qualname__ = f"flashrnn_{backend.name}_{cell}"
    call.__doc__ = (f"flashrnn.flashrnn(function={cell!r}, backend={backend.name!r}) through rnnconf's canonical "
                    f"{cell} signature")
    return call


@functools.lru_cache(maxsize=None)
def build(backend: Backend, cell: str) -> Target:
    """The adapter's Target.  CUDA backends: ``ImportError`` without a CUDA device (nothing is compiled).  Triton:
    the forward kernels' autotuners pinned to their (single) config under the interpreter."""
    name = adapter_name(backend.name, cell)
    if backend.needs_cuda and not torch.cuda.is_available():
        raise ImportError(f"adapter {name!r} needs a CUDA device (FlashRNN compiles its {backend.name} kernels "
                          f"with torch.utils.cpp_extension at the first call); none is available")
    fr = _load(name)
    traits, modules, index, note = backend.traits, (), None, ""
    if backend.kind == "triton":
        from ..kernels._backend import autotune_configs, interpreter_active

        traits = Traits(accumulate=None, cumsum="none", matmul=_native_matmul(), saves="input")
        with _quiet():
            modules = tuple(importlib.import_module(m) for m in backend.triton_modules)
        if interpreter_active() and any(autotune_configs(m) for m in modules):
            index = 0
            note = "; autotune pinned to its one config (siz_B=16, num_warps=4) under the Triton interpreter"
    device = "cuda" if backend.needs_cuda else "cpu"
    extras = {}
    native = backend.kind != "torch" and torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"
    rules = {d: (nat if native else interp) for d, interp, nat in backend.dims}
    doc = f"FlashRNN ({DISTRIBUTION} {_version()}) backend={backend.name} function={cell}: {backend.doc}{note}"
    target = Target(cell, name, _make_call(fr, backend, cell, modules, index), kind=backend.kind, traits=traits,
                    dtypes=backend.dtypes, supports=_FEATURES, device=device, doc=doc, extras=extras,
                    dim_rules=rules)
    skips = interpreter_skips(target)
    return replace(target, skips=skips) if skips else target


for _b in BACKENDS:
    for _cell in _b.cells:
        register_adapter(Adapter(
            name=adapter_name(_b.name, _cell), spec_id=_cell, library=LIBRARY, distribution=DISTRIBUTION,
            doc=f"FlashRNN backend={_b.name} function={_cell}: {_b.doc}",
            build=(lambda b, c: lambda: build(b, c))(_b, _cell)))
