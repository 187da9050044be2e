"""The reference forms that gradients are judged against are themselves gradchecked (finite differences, float64)."""
import pytest
import torch

from rnnconf.registry import all_specs, get_form
from rnnconf.spec.base import dim_size
from rnnconf.spec.targets import QK_L2NORM


def _specs_with_reference():
    return [s for s in all_specs() if "reference_form" in s.extra]


def _cases():
    for s in _specs_with_reference():
        for T in (1, 5):
            yield pytest.param(s, T, {}, id=f"{T}-{s.id}")
        target = get_form(f"{s.id}/{s.extra['reference_form']}")
        if QK_L2NORM in target.supports:  # the normalisation mode's gradients are judged against it too
            yield pytest.param(s, 5, {"use_qk_l2norm_in_kernel": True}, id=f"5-{s.id}-qk_l2norm")


@pytest.mark.parametrize("spec,T,mode", list(_cases()))
def test_reference_form_gradcheck(spec, T, mode):
    target = get_form(f"{spec.id}/{spec.extra['reference_form']}")
    gen = torch.Generator().manual_seed(T)
    dims = {"B": 2, "T": T, "D": 3, "L": 3, "H": 2, "K": 3, "V": 2, "N": 2}
    dims.update({n: (d.lo if d.lo == d.hi else 3) for n, d in spec.dims.items() if n not in dims})  # fixed: G, S
    statics = spec.static_values(dims)  # e.g. num_householder = N
    inputs = {}
    for a in spec.inputs:
        shape = tuple(dim_size(s, dims) for s in a.shape)
        v = torch.randn(shape, generator=gen, dtype=torch.float64)
        if a.domain.hi <= 0:
            v = -v.abs() - 0.1
        elif a.domain.lo >= 0:
            v = v.abs().clamp(max=0.9) if a.domain.hi <= 1 else v.abs() + 0.1
        inputs[a.name] = v
    state = spec.state_arg
    names = [a.name for a in spec.inputs if a.differentiable]
    if state is None:  # state-free (attention): inputs only
        def g(*vals):
            kw = dict(inputs)
            kw.update(zip(names, vals))
            return target.fn(*[kw[a.name] for a in spec.inputs], **statics, **mode)

        assert torch.autograd.gradcheck(g, [inputs[n].clone().requires_grad_(True) for n in names])
        return
    h0 = torch.randn(tuple(dim_size(s, dims) for s in state.shape), generator=gen, dtype=torch.float64)
    if spec.extra.get("state_dtype") == "complex":
        h0 = torch.complex(h0, torch.randn_like(h0))
    if "fix_state" in spec.extra:  # the spec's reachable states (sLSTM: n ∈ {0} ∪ [1, ∞), |c| ≤ n)
        h0 = spec.extra["fix_state"](h0.abs() + 1)

    def f(*vals):
        kw = dict(inputs)
        kw.update(zip(names, vals[:-1]))
        o, hT = target.fn(*[kw[a.name] for a in spec.inputs], initial_state=vals[-1], output_final_state=True,
                          **statics, **mode)
        return o, hT

    leaves = [inputs[n].clone().requires_grad_(True) for n in names] + [h0.clone().requires_grad_(True)]
    assert torch.autograd.gradcheck(f, leaves)
