"""The Triton backend helpers: interpreter detection, the per-dtype self-test, and autotune pinning."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import types  # noqa: E402

import pytest  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402

from rnnconf.kernels import _backend  # noqa: E402
from rnnconf.kernels._backend import autotune_configs, dtype_runnable, interpreter_active, kernel_device, pin_autotune  # noqa: E402

pytestmark = pytest.mark.kernel


def test_interpreter_flag_parsing(monkeypatch):
    for value, expected in [("1", True), ("true", True), ("ON", True), ("yes", True), ("0", False), ("", False),
                            ("false", False)]:
        monkeypatch.setenv("TRITON_INTERPRET", value)
        assert interpreter_active() is expected, value
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernel_device() == "cpu"
    monkeypatch.delenv("TRITON_INTERPRET")
    assert kernel_device() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_exact_dtypes_runnable(dtype):
    ok, reason = dtype_runnable(dtype)
    assert ok, reason
    assert reason is None


def test_bfloat16_broken_under_interpreter():
    if not interpreter_active():
        pytest.skip("bfloat16 is only known broken under the Triton interpreter")
    ok, reason = dtype_runnable(torch.bfloat16)
    assert not ok
    assert "bfloat16" in reason and "interpreter" in reason and "err=" in reason, reason


def test_dtype_runnable_never_raises():
    ok, reason = dtype_runnable(torch.complex64)  # no Triton dtype: the exception becomes the reason
    assert not ok and "complex64" in reason, reason
    assert dtype_runnable(torch.float32) == dtype_runnable(torch.float32)  # cached, stable


# ---------------------------------------------------------------------------------------------------------------------
# autotune pinning, on a local autotuned kernel (always) and on fla's hgrn module (when fla imports)

_CONFIGS = [triton.Config({"BLOCK": 8}, num_warps=1), triton.Config({"BLOCK": 16}, num_warps=2),
            triton.Config({"BLOCK": 32}, num_warps=4)]


@triton.heuristics({"EVEN": lambda args: args["n"] % 8 == 0})
@triton.autotune(configs=list(_CONFIGS), key=["n"])
@triton.jit
def _plus_block(x_ptr, y_ptr, n, BLOCK: tl.constexpr, EVEN: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=m) + BLOCK, mask=m)


def _run_plus_block(n=40):
    x = torch.zeros(n, device=kernel_device())
    y = torch.empty_like(x)
    _plus_block[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](x, y, n)
    return y


def test_pin_autotune_local_kernel():
    assert isinstance(_plus_block.fn, Autotuner)  # Heuristics → Autotuner → JITFunction
    assert autotune_configs(_plus_block) == [("_plus_block", 3)]
    for index, cfg in enumerate(_CONFIGS):
        with pin_autotune(_plus_block, index) as pinned:
            assert pinned == [("_plus_block", cfg)]
            assert autotune_configs(_plus_block) == [("_plus_block", 1)]
            y = _run_plus_block()
            assert torch.all(y == cfg.kwargs["BLOCK"]), (index, y)
        assert _plus_block.fn.configs == _CONFIGS  # restored, same objects in the same order


def test_pin_autotune_module_and_bad_index():
    mod = types.ModuleType("fake_kernels")
    mod.kernel = _plus_block
    mod.other = 3
    assert autotune_configs(mod) == [("_plus_block", 3)]
    with pytest.raises(IndexError, match="_plus_block has 3 configs"):
        with pin_autotune(mod, 7):
            pass
    assert _plus_block.fn.configs == _CONFIGS
    with pin_autotune(mod, -1):
        assert _plus_block.fn.configs == [_CONFIGS[-1]]
    assert _plus_block.fn.configs == _CONFIGS


@pytest.mark.fla
def test_pin_autotune_fla_hgrn():
    try:
        import fla.ops.hgrn.fused_recurrent as fla_hgrn
    except Exception as exc:  # noqa: BLE001 — fla may be missing or fail to import on this machine
        pytest.skip(f"fla not importable: {type(exc).__name__}: {exc}")
    before = autotune_configs(fla_hgrn)
    names = {name for name, _ in before}
    assert {"fused_recurrent_hgrn_fwd_kernel", "fused_recurrent_hgrn_bwd_kernel"} <= names, before
    assert all(n > 1 for _, n in before), before
    tuners = _backend._find_autotuners(fla_hgrn)
    saved = [list(t.configs) for t in tuners]
    with pin_autotune(fla_hgrn, 1) as pinned:
        assert autotune_configs(fla_hgrn) == [(name, 1) for name, _ in before]
        assert [cfg for _, cfg in pinned] == [s[1] for s in saved]
    assert autotune_configs(fla_hgrn) == before
    assert [t.configs for t in tuners] == saved
