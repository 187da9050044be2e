"""Meta-tests of the spec-derived strategies: values stay in their domains, and the edges bugs live at are reached."""
import torch
from hypothesis import given
from hypothesis import strategies as st

from rnnconf.properties import get_profile
from rnnconf.properties.context import Ctx
from rnnconf.properties.strategies import realize, round_to
from rnnconf.registry import all_specs, builtin_forms, get_spec

PROFILE = get_profile("ci")


def _domains():
    for spec in all_specs():
        for a in spec.args:
            yield spec.id, a.name, a.domain


def test_realized_values_stay_in_domain_for_every_dtype():
    for spec_id, name, d in _domains():
        for spread in (1e-3, 1.0, 100.0):
            for frac in (0.0, 0.5, 1.0):
                v = realize(d, (4, 33), 7, spread, frac, d.edges)
                for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
                    r = round_to(v, dt, d)
                    assert d.contains(r), f"{spec_id}.{name} left {d.describe()} at {dt} (spread={spread})"


def _collect(spec_id, n=60):
    spec = get_spec(spec_id)
    target = [t for t in builtin_forms(spec_id) if t.name == "sequential"][0]
    seen = []

    @PROFILE.settings(max_examples=n)
    @given(st.data())
    def run(data):
        ctx = Ctx(spec, target, torch.float32, PROFILE, data)
        seen.append(ctx.draw_inputs(ctx.draw_dims()))

    run()
    return seen


def test_hgrn_draws_reach_the_edges():
    seen = _collect("hgrn")
    Ts = {ex["dims"]["T"] for ex in seen}
    assert 1 in Ts, "T = 1 never drawn"
    assert any(T % 16 and T > 16 for T in Ts), "no T past a chunk that is not a multiple of it"
    assert any(T > 2 and all(T % k for k in range(2, T)) for T in Ts), "no prime T"
    gs = torch.cat([ex["inputs"]["g"].flatten() for ex in seen])
    assert (gs == 0).any(), "gate exactly 1 (g = 0) never drawn"
    assert (gs == -1e4).any(), "state reset (g = −1e4) never drawn"
    assert (gs < 0).any() and (gs > -1e-3).any(), "no gates near 1"
    assert any(ex["initial_state"] is None for ex in seen) and any(ex["initial_state"] is not None for ex in seen)
    assert 1 in {ex["dims"]["D"] for ex in seen}, "D = 1 never drawn"


def test_draws_are_labelled():
    """A falsifying example must read as 'T=…, g.spread=…': every draw carries a label."""
    spec = get_spec("hgrn")
    target = [t for t in builtin_forms("hgrn") if t.name == "sequential"][0]
    labels = []

    class Recorder:
        def __init__(self, data):
            self.data = data

        def draw(self, strategy, label=None):
            labels.append(label)
            return self.data.draw(strategy, label=label)

    @PROFILE.settings(max_examples=3)
    @given(st.data())
    def run(data):
        ctx = Ctx(spec, target, torch.float32, PROFILE, Recorder(data))
        ctx.draw_inputs(ctx.draw_dims())

    run()
    assert labels and all(isinstance(lbl, str) and lbl for lbl in labels), labels
