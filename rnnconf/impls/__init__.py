"""Torch forms of each spec (sequential, parallel scan, chunkwise, …); importing registers them."""
from . import (
    aaren,  # noqa: F401,E402
    delta,  # noqa: F401,E402
    delta_product,  # noqa: F401,E402
    forgetting_attention,  # noqa: F401,E402
    hgrn,  # noqa: F401
    hgrn_layer,  # noqa: F401
    mingru,  # noqa: F401
    nonlinear,  # noqa: F401
    pararnn,  # noqa: F401
    ssd,  # noqa: F401
)
