"""PyTorch's own recurrent layers against rnnconf's specs: ``torch.nn.LSTM`` (lstm), ``torch.nn.GRU`` (gru) and
``torch.nn.RNN(nonlinearity="tanh")`` (elman), through :mod:`rnnconf.adapters.torch_nn` — every applicable property
per dtype.  On this machine that is ATen's CPU kernel; on a GPU (``tox -e gpu``) cuDNN.

These layers keep their gates and state in the input dtype (no float32 state for half inputs), which the adapter
declares (``accumulate=None``): the half-precision bounds are those of a half-precision evaluation, beyond first
order where a pre-activation's rounding leaves an activation's linear regime (:mod:`rnnconf.spec.running_error`).
Findings would be strict xfails with their reasons; there are none.
"""
import pytest
import torch

from rnnconf.adapters import get_adapter, list_adapters
from rnnconf.properties import PROPERTIES, get_profile, properties_for, run_property
from rnnconf.registry import get_spec

pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

ADAPTERS = ("torch:nn.LSTM", "torch:nn.GRU", "torch:nn.RNN")
FINDINGS: dict = {}
_TARGETS = {}


def _target(name):
    if name not in _TARGETS:
        _TARGETS[name] = get_adapter(name)
    return _TARGETS[name]


def _items():
    for name in ADAPTERS:
        target = _target(name)
        spec = get_spec(target.spec_id)
        for prop in properties_for(spec, target):
            if prop.not_applicable(spec, target):
                continue
            for dt in (target.dtypes if prop.all_dtypes else (torch.float32,)):
                finding = FINDINGS.get((name, prop.name, dt))
                marks = [pytest.mark.xfail(strict=get_profile().derandomize, reason=finding)] if finding else []
                yield pytest.param(name, prop.name, dt, marks=marks,
                                   id=f"{name}-{prop.name}-{str(dt).replace('torch.', '')}")


@pytest.mark.parametrize("name,prop_name,dtype", list(_items()))
def test_torch_nn(name, prop_name, dtype):
    target = _target(name)
    v = run_property(PROPERTIES[prop_name], get_spec(target.spec_id), target, dtype, get_profile())
    assert v.status == "passed", f"{v.status}: {v.reason}\ncounterexample: {v.counterexample}"
    assert v.examples > 0, "property ran no example"


def test_adapters_listed():
    listed = {a["name"]: a for a in list_adapters()}
    assert {listed[n]["spec"] for n in ADAPTERS} == {"lstm", "gru", "elman"}
    assert all(listed[n]["available"] for n in ADAPTERS)
