"""FoX Triton kernel: edge shapes under the interpreter, and the native code path compiled for sm_90 without a GPU."""
import os
import subprocess
import sys

import pytest
import torch

from rnnconf.kernels.forgetting_attention import fox, fox_acp
from rnnconf.oracles.forgetting_attention import forgetting_attention_oracle
from rnnconf.registry import get_form
from rnnconf.spec.softmax import ATTENTION_ERROR


@pytest.mark.kernel
@pytest.mark.parametrize("T", [0, 1, 16, 17])
def test_edge_lengths_and_noncontiguous(T):
    gen = torch.Generator().manual_seed(T)
    B, H, K, V = 2, 3, 5, 3
    q = torch.randn(B, H, T, K, generator=gen).transpose(1, 2)  # non-contiguous [B, T, H, K]
    k = torch.randn(B, T, H, K, generator=gen)
    v = torch.randn(B, T, H, V, generator=gen)
    g = -torch.rand(B, T, H, generator=gen)
    o = fox(q, k, v, g)
    assert o.shape == (B, T, H, V) and o.dtype == torch.float32
    res = forgetting_attention_oracle(q.double(), k.double(), v.double(), g.double())
    bound = ATTENTION_ERROR.bound(res.steps["o"], res.mag["o"], res.logmass["o"], torch.float32,
                                  get_form("forgetting-attention/triton").traits, cond=res.cond["o"])
    assert torch.isfinite(o).all() and ((o.double() - res.values["o"]).abs() <= bound).all()
    o2, info = fox_acp(q, k, v, g, log_eps=float("-inf"), return_pruning=True)
    assert torch.equal(o2, o) and not info["pruned"].any()


_NATIVE = r"""
import os
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from rnnconf.kernels import forgetting_attention as F

for dt in ("fp32", "fp16"):
    for fn, extra in ((F._fox_fwd, {"USE_ACP": True}), (F._fox_fwd, {"USE_ACP": False}), (F._fox_bwd_kv, {}),
                      (F._fox_bwd_q, {})):
        sig = {}
        for n in fn.arg_names:
            if n in ("T", "H", "K", "V"):
                sig[n] = "i32"
            elif n == "scale":
                sig[n] = "fp32"
            elif n in ("BM", "BK", "BV", "USE_ACP"):
                sig[n] = "constexpr"
            elif n == "start":
                sig[n] = "*i32"
            elif n in ("q", "k", "v", "o", "do", "dq", "dk", "dv"):
                sig[n] = f"*{dt}"
            else:
                sig[n] = "*fp32"
        const = {"BM": 16, "BK": 16, "BV": 32, **extra}
        triton.compile(ASTSource(fn, sig, {k: v for k, v in const.items() if k in fn.arg_names}),
                       target=GPUTarget("cuda", 90, 32))
print("ok")
"""


@pytest.mark.slow
def test_native_code_path_compiles():
    """The kernels as ``triton.jit`` builds them natively (libdevice exp, 3-D diagonal select, tl.dot ieee) compile
    through ptxas for sm_90 — the interpreter never exercises that path."""
    import triton.backends

    if "nvidia" not in getattr(triton.backends, "backends", {}):
        pytest.skip("this triton has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", _NATIVE], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]
