"""Every target of a spec is judged on the same examples: the derandomized draws are a function of (spec,
property, dtype, profile) only, so two libraries implementing one algorithm get the same inputs.  The example
database stays keyed per target, so a saved failure replays for the target it belongs to."""
from dataclasses import replace

import pytest
import torch

from rnnconf.properties.checks import PROPERTIES
from rnnconf.properties.profiles import get_profile
from rnnconf.properties.runner import database_key, example_key, run_property
from rnnconf.registry import get_form, get_spec


def _drawn(prop, spec, target, dtype, profile, n=4):
    """The examples ``run_property`` draws for ``target`` (the check records them and never calls the target)."""
    seen = []

    def record(ctx, ex):
        seen.append(ex)
        return 0.0

    v = run_property(replace(prop, check=record), spec, target, dtype, profile, max_examples=n)
    assert v.status == "passed", (v.status, v.reason)
    return seen


def _same(a, b, where="ex") -> str | None:
    """Where two drawn examples differ (None if identical): tensors bit for bit, dtype and shape included."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ok = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a.nan_to_num(), b.nan_to_num()) \
            and torch.equal(a.isnan(), b.isnan())
        return None if ok else where
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{where} keys {sorted(a)} vs {sorted(b)}"
        return next((d for k in a if (d := _same(a[k], b[k], f"{where}[{k!r}]"))), None)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where} lengths {len(a)} vs {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _same(x, y, f"{where}[{i}]"))), None)
    return None if a == b else f"{where}: {a!r} vs {b!r}"


@pytest.mark.parametrize("prop_name", ["oracle", "state-carry"])
def test_two_targets_of_one_spec_draw_identical_examples(prop_name):
    spec, profile, dtype = get_spec("hgrn"), get_profile("ci"), torch.float32
    a, b = get_form("hgrn/sequential"), get_form("hgrn/triton-fused")  # a torch loop and a Triton kernel
    assert a.supports == b.supports and dict(a.domain_overrides) == dict(b.domain_overrides)  # same declared draws
    prop = PROPERTIES[prop_name]
    ea, eb = _drawn(prop, spec, a, dtype, profile), _drawn(prop, spec, b, dtype, profile)
    assert len(ea) == len(eb) == 4
    for i, (x, y) in enumerate(zip(ea, eb)):
        diff = _same(x, y)
        assert diff is None, f"{prop_name} example {i}: {a.id} and {b.id} drew different inputs at {diff}"


def test_examples_depend_on_property_and_dtype():
    """The control: the key does select the examples (a renamed property or another dtype draws others)."""
    spec, profile, t = get_spec("hgrn"), get_profile("ci"), get_form("hgrn/sequential")
    prop = PROPERTIES["oracle"]
    base = _drawn(prop, spec, t, torch.float32, profile)
    renamed = _drawn(replace(prop, name="oracle-renamed"), spec, t, torch.float32, profile)
    assert any(_same(x, y) for x, y in zip(base, renamed)), "a different property key drew the same examples"
    other_dtype = _drawn(prop, spec, t, torch.float64, profile)
    assert any(_same(x, y) for x, y in zip(base, other_dtype))


def test_database_is_keyed_per_target_examples_are_not():
    spec, profile, prop = get_spec("hgrn"), get_profile("ci"), PROPERTIES["oracle"]
    a, b = get_form("hgrn/sequential"), get_form("hgrn/scan")
    assert example_key(spec, prop, torch.float32, profile) == b"hgrn|oracle|float32|ci"
    assert database_key(spec, prop, a, torch.float32, profile) != database_key(spec, prop, b, torch.float32, profile)
    assert database_key(spec, prop, a, torch.float32, profile) \
        != database_key(spec, prop, a, torch.float32, get_profile("dev"))


def test_examples_do_not_depend_on_the_modules_the_session_imported(tmp_path, monkeypatch):
    """Hypothesis mixes literal constants of every local module in ``sys.modules`` into its draws, cached per
    process: without rnnconf's guard a module imported earlier (here one full of odd floats and ints, its pool
    cache cleared as in a fresh process) changes what a seed draws — one test file alone and the whole suite drew
    different inputs, and a pararnn bf16 gradient failed only in the full suite."""
    from hypothesis.internal.conjecture import providers as pv

    spec, profile, dtype = get_spec("paragru"), get_profile("ci"), torch.float32
    target, prop = get_form("paragru/sequential"), PROPERTIES["gradients"]
    before = _drawn(prop, spec, target, dtype, profile, n=10)
    mod = tmp_path / "rnnconf_odd_constants.py"
    mod.write_text("ODD = [" + ", ".join(f"{x}e{e}" for x in (1.5, -7.25, 3.0) for e in range(-30, 31, 3))
                   + "] + [" + ", ".join(str(k) for k in range(-300, 300, 7)) + "]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("rnnconf_odd_constants")
    monkeypatch.setattr(pv, "CONSTANTS_CACHE", type(pv.CONSTANTS_CACHE)(1024))
    after = _drawn(prop, spec, target, dtype, profile, n=10)
    assert len(before) == len(after)
    diffs = [d for a, b in zip(before, after) if (d := _same(a, b))]
    assert not diffs, diffs[:3]


def test_suite_counts_and_confirming():
    """The ci profile's suite counts (float32, other dtypes, interpreted kernels), and the full counts a finding or
    a planted bug is confirmed at."""
    from rnnconf.kernels._backend import interpreter_active

    ci = get_profile("ci")
    torch_form, kernel = get_form("hgrn/sequential"), get_form("hgrn/triton-fused")
    assert ci.examples_for(torch_form, torch.float32) == 3 and ci.examples_for(torch_form, torch.float16) == 2
    full = ci.confirming()
    assert not full.shrink and full.examples_for(torch_form, torch.float16) == ci.max_examples == 10
    if interpreter_active():
        assert ci.examples_for(kernel, torch.float32) == 2 and ci.examples_for(kernel, torch.float16) == 2
        assert full.examples_for(kernel, torch.float32) == 3
