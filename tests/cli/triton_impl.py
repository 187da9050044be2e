"""A third-party hgrn that is a Triton target only at run time: its module does not import triton; the function
imports it lazily and launches a Triton kernel on each call (a copy of the output through a scratch buffer, checked,
so the launch is real work), while autograd flows through the torch computation.  rnnconf must see the launch
(kind "triton": the backend dtype self-test applies) although nothing in this file's imports mentions triton."""
import torch
from impls import hgrn as _hgrn  # this directory is on sys.path when rnnconf imports the file

_KERNEL = []


def _copy_kernel():
    if not _KERNEL:
        import triton
        import triton.language as tl

        @triton.jit
        def _copy(src, dst, n, BLOCK: tl.constexpr):
            offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
            m = offs < n
            tl.store(dst + offs, tl.load(src + offs, mask=m), mask=m)

        _KERNEL.append(_copy)
    return _KERNEL[0]


def hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    o, h = _hgrn(x, g, initial_state, output_final_state, cu_seqlens)
    src = o.detach().reshape(-1).contiguous()
    if src.numel():
        dst = torch.empty_like(src)
        _copy_kernel()[((src.numel() + 127) // 128,)](src, dst, src.numel(), BLOCK=128)
        if not torch.equal(dst, src):
            raise RuntimeError("triton copy mismatch")
    return o, h
