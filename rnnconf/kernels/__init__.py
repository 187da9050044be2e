"""Triton kernels; importing registers them.  They run natively on CUDA and under TRITON_INTERPRET=1 on a CPU."""
from . import hgrn, mingru  # noqa: F401
