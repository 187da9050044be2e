"""Triton kernels; importing registers them.  They run natively on CUDA and under TRITON_INTERPRET=1 on a CPU."""
from . import (  # noqa: F401
    aaren,  # noqa: F401,E402
    delta,  # noqa: F401,E402
    forgetting_attention,  # noqa: F401,E402
    hgrn,
    mingru,
    nonlinear,
    pararnn,
)
