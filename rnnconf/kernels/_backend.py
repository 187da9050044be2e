"""Where the Triton kernels run, which dtypes the backend gets right, and pinning autotuned kernels to one config.

* :func:`interpreter_active` / :func:`kernel_device`: Triton runs natively on CUDA, or under ``TRITON_INTERPRET=1``
  on the CPU (the interpreter executes kernels with numpy; tensors then live on the CPU).  Note that ``triton.jit``
  decides between the two when a kernel is *decorated*, so the variable must be set before kernel modules import.
* :func:`dtype_runnable`: a tiny cached self-test of the backend for one dtype (an elementwise kernel and a 16×16
  ``tl.dot``).  A dtype the backend computes wrongly is reported with the measured errors, so properties skip it
  with a reason instead of blaming the kernel under test (the interpreter mishandles bfloat16).
* :func:`observe_triton_launches`: a context manager recording every Triton kernel launch made inside it — how a
  target is found to be a Triton target (at run time, not from its source).
* :func:`pin_autotune` / :func:`autotune_configs`: the interpreter cannot benchmark (the autotuner raises "0 active
  drivers"), and checking each config separately needs one config at a time.  Only ``Autotuner.configs`` and the
  ``.fn`` chain are relied on, which hold across Triton 3.x.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import types
from typing import Iterator

import torch

_TRUTHY = ("1", "true", "on", "yes", "y")


def interpreter_active() -> bool:
    """Whether Triton kernels run under the interpreter (``TRITON_INTERPRET`` set to a truthy value)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in _TRUTHY


def interpreter_limit(exc: BaseException, context: str = "") -> str | None:
    """Why ``exc`` is a limit of the Triton interpreter rather than a verdict on the kernel, or None.

    Under ``TRITON_INTERPRET=1`` an exception raised while *interpreting* a kernel body reaches the caller as
    ``triton.runtime.errors.InterpreterError`` (e.g. ``.to`` on a ``range`` variable, mask dtypes the interpreter does
    not take).  Natively the same code compiles or fails with a ``CompilationError``, which stays a verdict.  A
    property call that hits one is *skipped* with this reason — never a pass, never a failure; a GPU run judges it.
    ``context`` goes after "interpreter" (e.g. " in float16")."""
    if not interpreter_active():
        return None
    try:
        from triton.runtime.errors import InterpreterError
    except ImportError:
        return None
    e, seen = exc, set()
    while e is not None and id(e) not in seen:  # the error itself or one it was raised from
        if isinstance(e, InterpreterError):
            try:
                ver = importlib.metadata.version("triton")
            except importlib.metadata.PackageNotFoundError:
                ver = "?"
            try:
                msg = str(e).strip()
            except Exception:  # noqa: BLE001  (a message that cannot be printed)
                msg = type(e).__name__
            return f"cannot run under the Triton {ver} interpreter{context} ({msg}); not judged here"
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def kernel_device() -> str:
    """The torch device kernels take their tensors on: ``"cuda"`` natively, ``"cpu"`` under the interpreter."""
    return "cuda" if torch.cuda.is_available() and not interpreter_active() else "cpu"


def backend_name() -> str:
    return "interpreter" if interpreter_active() else ("cuda" if torch.cuda.is_available() else "none")


# --------------------------------------------------------------------------------------------------------------------
# dtype self-test
# --------------------------------------------------------------------------------------------------------------------

_SELFTEST_KERNELS = None


def _selftest_kernels():
    """Defined lazily: importing triton (and decorating) only when a self-test is asked for."""
    global _SELFTEST_KERNELS
    if _SELFTEST_KERNELS is None:
        import triton
        import triton.language as tl

        @triton.jit
        def _times_two(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            m = offs < n
            x = tl.load(x_ptr + offs, mask=m, other=0.0)
            tl.store(y_ptr + offs, x * 2, mask=m)

        @triton.jit
        def _dot16(a_ptr, b_ptr, c_ptr, N: tl.constexpr):
            i = tl.arange(0, N)
            a = tl.load(a_ptr + i[:, None] * N + i[None, :])
            b = tl.load(b_ptr + i[:, None] * N + i[None, :])
            c = tl.dot(a, b, input_precision="ieee", out_dtype=tl.float32)
            tl.store(c_ptr + i[:, None] * N + i[None, :], c)

        _SELFTEST_KERNELS = (_times_two, _dot16)
    return _SELFTEST_KERNELS


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


@functools.lru_cache(maxsize=None)
def _dtype_runnable(dtype: torch.dtype, backend: str) -> tuple[bool, str | None]:
    from ..spec.errors import unit_roundoff

    name = _dtype_name(dtype)
    try:
        times_two, dot16 = _selftest_kernels()
        dev = kernel_device()
        gen = torch.Generator().manual_seed(0)
        n = 37
        # values exactly representable in every float dtype (small integers and halves): x*2 is exact
        x = (torch.randint(-64, 64, (n,), generator=gen).double() / 2).to(dtype).to(dev)
        N = 16
        a = (torch.randint(-8, 8, (N, N), generator=gen).double() / 4).to(dtype).to(dev)
        b = (torch.randint(-8, 8, (N, N), generator=gen).double() / 4).to(dtype).to(dev)
    except Exception as exc:  # noqa: BLE001 — reported, never raised
        return False, f"{name} cannot run on this Triton backend ({backend}): {type(exc).__name__}: {exc}"

    def elementwise():
        y = torch.full_like(x, float("nan"))
        times_two[(1,)](x, y, n, BLOCK=64)
        return float((y.double() - 2 * x.double()).abs().max().nan_to_num(float("inf")).cpu()), 0.0

    def dot():
        c = torch.full((N, N), float("nan"), dtype=torch.float32, device=dev)
        dot16[(1,)](a, b, c, N=N)
        ref = a.double() @ b.double()
        scale = float((a.double().abs() @ b.double().abs()).max().cpu())
        # fp32 accumulation of N exact products: N·u₃₂ relative to Σ|a||b| (here every partial sum is exact)
        return float((c.double() - ref).abs().max().nan_to_num(float("inf")).cpu()), \
            N * unit_roundoff(torch.float32) * scale

    # each part is measured on its own, so one that raises (Triton 3.6's interpreter cannot build a bfloat16
    # constant for x*2) does not hide the other's error (its bfloat16 16×16 tl.dot is off by 2.5e10)
    parts, ok = [], True
    for label, part in [("elementwise", elementwise)] + ([("dot", dot)] if dtype != torch.float64 else []):
        try:
            err, tol = part()
        except Exception as exc:  # noqa: BLE001 — reported, never raised
            parts.append(f"{label} raised {type(exc).__name__}: {exc}")
            ok = False
            continue
        parts.append(f"{label} err={err:.3g}")
        ok = ok and err <= tol
    if ok:
        return True, None
    return False, f"{name} is broken on this Triton backend ({backend}): self-test " + ", ".join(parts)


def dtype_runnable(dtype: torch.dtype) -> tuple[bool, str | None]:
    """``(True, None)`` if a tiny Triton self-test on ``dtype`` is exact, else ``(False, reason)``.  Never raises."""
    try:
        return _dtype_runnable(dtype, backend_name())
    except Exception as exc:  # noqa: BLE001
        return False, f"{dtype} self-test failed: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------------------------------
# observing launches
# --------------------------------------------------------------------------------------------------------------------

class Launches:
    """What :func:`observe_triton_launches` saw: ``launched`` (any kernel launch), ``count`` (launches),
    ``kernels`` (their names, in order, without repeats), ``available`` (whether Triton could be imported at all)."""

    def __init__(self, available: bool):
        self.available = available
        self.kernels: list[str] = []
        self.count = 0  # launches, repeats included

    @property
    def launched(self) -> bool:
        return bool(self.kernels)

    def _saw(self, fn) -> None:
        self.count += 1
        name = getattr(getattr(fn, "fn", None), "__name__", None) or getattr(fn, "__name__", None) or repr(fn)
        if name not in self.kernels:
            self.kernels.append(name)


def _launch_classes() -> list:
    """The classes whose ``run`` launches a kernel in Triton 3.x: ``JITFunction`` (compiled) and the interpreter's
    ``InterpretedFunction`` (``TRITON_INTERPRET=1``).  Autotuners and heuristics end in one of these."""
    from triton.runtime.jit import JITFunction

    classes = [JITFunction]
    try:
        from triton.runtime.interpreter import InterpretedFunction

        classes.append(InterpretedFunction)
    except ImportError:  # a Triton without the interpreter
        pass
    return classes


@contextlib.contextmanager
def observe_triton_launches():
    """Within the context, every Triton kernel launch (``kernel[grid](...)``, autotuned or not, compiled or
    interpreted; warm-up compilations excluded) is recorded on the yielded :class:`Launches`.  Whether a target is a
    Triton target is decided by this, at run time — not by what its source file mentions: a function that imports
    triton lazily is seen, and a pure-torch function in a file that imports triton is not.  Patches ``run`` on the
    launch classes (restored on exit; nesting is fine).  Without Triton installed nothing can launch: ``launched``
    stays False and ``available`` is False."""
    try:
        classes = _launch_classes()
    except Exception:  # noqa: BLE001 — no (importable) Triton: nothing can launch
        yield Launches(available=False)
        return
    seen = Launches(available=True)
    saved = []

    def wrap(orig):
        @functools.wraps(orig)
        def run(self, *args, **kwargs):
            if not kwargs.get("warmup", False):
                seen._saw(self)
            return orig(self, *args, **kwargs)

        return run

    try:
        for cls in classes:
            orig = cls.__dict__.get("run")
            if orig is None:
                continue
            saved.append((cls, orig))
            cls.run = wrap(orig)
        yield seen
    finally:
        for cls, orig in reversed(saved):
            cls.run = orig


# --------------------------------------------------------------------------------------------------------------------
# autotune pinning
# --------------------------------------------------------------------------------------------------------------------

def _autotuner_cls():
    from triton.runtime.autotuner import Autotuner

    return Autotuner


def _chain(obj) -> Iterator[object]:
    """obj, obj.fn, obj.fn.fn, … (Heuristics → Autotuner → JITFunction → python function)."""
    seen = set()
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        yield obj
        obj = getattr(obj, "fn", None) if not isinstance(obj, types.FunctionType) else None


def _find_autotuners(obj) -> list:
    Autotuner = _autotuner_cls()
    roots = list(vars(obj).values()) if isinstance(obj, types.ModuleType) else [obj]
    found, ids = [], set()
    for root in roots:
        for o in _chain(root):
            if isinstance(o, Autotuner) and id(o) not in ids:
                ids.add(id(o))
                found.append(o)
    return found


def _kernel_name(tuner) -> str:
    last = None
    for o in _chain(tuner):
        last = o
    return getattr(last, "__name__", repr(last))


def autotune_configs(obj) -> list[tuple[str, int]]:
    """``[(kernel_name, n_configs)]`` for every autotuner reachable from ``obj`` (a kernel object or a module)."""
    return [(_kernel_name(t), len(t.configs)) for t in _find_autotuners(obj)]


@contextlib.contextmanager
def pin_autotune(obj, index: int = 0):
    """Within the context every autotuner reachable from ``obj`` has only its ``index``-th config (restored after).

    A single config is run without benchmarking, which is what the interpreter needs; an ``index`` beyond a tuner's
    configs raises ``IndexError`` naming the kernel."""
    tuners = _find_autotuners(obj)
    saved = []
    try:
        for t in tuners:
            cfgs = t.configs
            if not -len(cfgs) <= index < len(cfgs):
                raise IndexError(f"autotuned kernel {_kernel_name(t)} has {len(cfgs)} configs, no index {index}")
            saved.append((t, cfgs))
            t.configs = [cfgs[index]]
        yield [(_kernel_name(t), t.configs[0]) for t in tuners]
    finally:
        for t, cfgs in saved:
            t.configs = cfgs
