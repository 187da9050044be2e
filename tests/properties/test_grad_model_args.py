"""The gradient property hands a spec's gradient error model the evaluating precision (the target's traits and the
dtype under test), also where the model is a wrapper taking ``**kwargs``: dropped, the bound would silently be the
first-order one at the exact point (how the ParaRNN cells' bf16 bounds lost their beyond-first-order rules)."""
import inspect

import torch

from rnnconf.properties.checks import _grad_magnitudes
from rnnconf.registry import builtin_forms, get_spec


class _Spec:
    def __init__(self, fn):
        self.extra = {"grad_magnitudes": fn}


def test_kwargs_wrapper_gets_traits_and_dtype():
    seen = {}

    def model(*a, **k):
        seen.update(k)
        return {}

    target = builtin_forms("paragru")[0]
    _grad_magnitudes(_Spec(model), target, {}, None, None, None, torch.bfloat16)
    assert seen.get("traits") is target.traits and seen.get("dtype") is torch.bfloat16, seen


def test_pararnn_models_take_the_precision_by_name():
    for cell in ("paragru", "paralstm"):
        names = inspect.signature(get_spec(cell).extra["grad_magnitudes"]).parameters
        assert {"traits", "dtype"} <= set(names), (cell, list(names))
