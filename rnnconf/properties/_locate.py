"""Where a violation is: shared by the family invariant modules."""
from __future__ import annotations

import torch


def worst_index(excess: torch.Tensor, bad: torch.Tensor) -> tuple:
    """Index of the worst violation: a NaN first, else the largest excess among ``bad``."""
    nan = torch.isnan(excess) & bad
    pick = nan if nan.any() else bad & (excess == excess[bad].max())
    return tuple(int(i) for i in pick.nonzero()[0])
