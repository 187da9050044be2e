"""Traits.saves: a backward that re-reads activations saved in the input dtype is charged u_s·mag in the gradient
bound — and needs it.  The target is fla's ``fused_recurrent_hgrn`` policy written in torch (float32 loops, o
stored in the input dtype, the backward reading o as h_{t−1}); on the input of the committed fla finding it returns
exactly fla's dg = −156.625 (exact −156.728): 1.25× the bound without the term, within it with ``saves="input"``.
Also: the traits grammar (``--traits``) and what ANY_TRAITS charges."""
import dataclasses

import pytest
import torch

from rnnconf.properties import PROPERTIES, get_profile
from rnnconf.properties.calling import PropertyFailure
from rnnconf.properties.runner import replay
from rnnconf.registry import get_spec
from rnnconf.spec.errors import ANY_CHUNK, ANY_TRAITS, Traits, parse_traits, saved_u, unit_roundoff
from rnnconf.spec.targets import Target


class _SavedInInputDtype(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g):
        B, T, D = x.shape
        h = torch.zeros(B, D, dtype=torch.float32)
        o = torch.empty_like(x)
        for t in range(T):
            h = torch.exp(g[:, t].float()) * h + x[:, t].float()
            o[:, t] = h.to(x.dtype)  # the only copy of h kept: rounded to the input dtype
        ctx.save_for_backward(g, o)
        return o

    @staticmethod
    def backward(ctx, do):
        g, o = ctx.saved_tensors
        B, T, D = do.shape
        dh = torch.zeros(B, D, dtype=torch.float32)
        dx, dg = (torch.empty(B, T, D, dtype=torch.float32) for _ in range(2))
        for t in reversed(range(T)):
            if t + 1 < T:
                dh = dh * torch.exp(g[:, t + 1].float())
            dh = dh + do[:, t].float()
            dx[:, t] = dh
            h_prev = o[:, t - 1].float() if t else torch.zeros_like(dh)  # re-read, rounded
            dg[:, t] = dh * torch.exp(g[:, t].float()) * h_prev
        return dx.to(do.dtype), dg.to(do.dtype)


def _fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    return _SavedInInputDtype.apply(x, g), None


TARGET = Target("hgrn", "saved-in-input-dtype", _fn, traits=Traits(accumulate="float32", cumsum="none"),
                dtypes=(torch.float32, torch.float16), supports=frozenset({"grad"}))
# the input of the fla finding (docs/conformance/fla-fused_recurrent_hgrn, gradients-float16): B = 1, T = 17, D = 1
X = [1000.0, -0.63330078125, -1.2607421875, -0.72705078125, 1000.0, 0.2103271484375, 0.17724609375, -0.83056640625,
     0.23876953125, -0.24267578125, -0.77294921875, -1.5947265625, -0.68701171875, 1.48828125, -0.448486328125,
     -0.89111328125, 0.6748046875]
G = [-0.468017578125, -0.000244140625, -0.06842041015625, -0.01448822021484375, -0.44970703125,
     -0.01267242431640625, -0.00030303001403808594, -0.0011692047119140625, -0.05902099609375, -0.0070648193359375,
     -0.0002130270004272461, -0.053955078125, -0.030120849609375, -0.1705322265625, -0.08538818359375,
     -0.0029201507568359375, -0.5830078125]
DO = [0.57763671875, -0.4794921875, -0.1815185546875, -1.4375, 0.453369140625, -0.466796875, -0.148193359375,
      -0.1368408203125, 0.90185546875, 0.486572265625, -0.6826171875, -0.58154296875, 0.2030029296875, 0.54296875,
      0.61083984375, -0.002529144287109375, -0.266357421875]


def _example():
    t = lambda v: torch.tensor(v, dtype=torch.float64).view(1, 17, 1)  # noqa: E731
    return {"dims": {"B": 1, "T": 17, "D": 1}, "inputs": {"x": t(X), "g": t(G)}, "initial_state": None,
            "do": t(DO), "dht": None}


def _replay(saves):
    target = dataclasses.replace(TARGET, traits=TARGET.traits.with_(saves=saves))
    return replay(PROPERTIES["gradients"], get_spec("hgrn"), target, torch.float16, get_profile("ci"), _example())


def test_saved_in_input_dtype_backward_fails_without_the_term():
    with pytest.raises(PropertyFailure) as e:
        _replay(None)
    msg = str(e.value)
    assert "dg[0,15,0]" in msg and "got -156.625" in msg and "expected -156.728" in msg and "1.25× the bound" in msg


def test_saved_in_input_dtype_backward_passes_with_the_declared_term():
    assert _replay("input") < 0.7  # measured 0.646: 0.103 against 0.0823 + u₁₆·mag


def test_saved_u():
    assert saved_u(torch.float16, Traits()) == 0.0
    assert saved_u(torch.float16, Traits(saves="input")) == unit_roundoff(torch.float16)
    assert saved_u(torch.float16, Traits(saves="float32")) == unit_roundoff(torch.float32)


def test_traits_grammar():
    t = parse_traits("accumulate=float32,cumsum=chunk,chunk_size=64,matmul=tf32,saves=float16")
    assert t == ANY_TRAITS.with_(accumulate="float32", cumsum="chunk", chunk_size=64, matmul="tf32", saves="float16")
    assert parse_traits({"accumulate": None, "log_values": False, "chunk_size": "any"}) == \
        ANY_TRAITS.with_(log_values=False)
    assert parse_traits("saves=none,chunk-size=none").saves is None
    for bad, needle in [("accumulate=float8", "trait accumulate"), ("cumsum=chunk,chunk_size=none", "needs chunk_size"),
                        ("chunk_size=0", "positive integer"), ("x=1", "unknown trait 'x'"), ("saves", "KEY=VALUE"),
                        ("log_values=maybe", "true or false")]:
        with pytest.raises(ValueError, match=needle):
            parse_traits(bad)


def test_any_traits_charges_every_term():
    assert ANY_TRAITS.accumulate is None and ANY_TRAITS.cumsum == "full" and ANY_TRAITS.chunk_size == ANY_CHUNK
    assert ANY_TRAITS.log_values and ANY_TRAITS.saves == "input" and ANY_TRAITS.matmul == "ieee"
    assert ANY_TRAITS.layout_dependent
    assert "chunk=any" in ANY_TRAITS.describe() and "saves=input" in ANY_TRAITS.describe()
