"""Non-finite is never a pass (issue 12, part 5): an all-NaN kernel (tests/cli/broken_kernels.py:all_nan_hgrn) runs
every property that concerns hgrn and applies to it, and none may pass — in particular not the ones that compare
the target with itself bitwise (causality, independence, determinism), where NaN equals NaN."""
import importlib.util
import pathlib
import sys

import pytest
import torch

from rnnconf.properties import get_profile, properties_for, run_property
from rnnconf.registry import get_spec
from rnnconf.spec.errors import Traits
from rnnconf.spec.targets import Target

CLI = pathlib.Path(__file__).resolve().parents[1] / "cli"


def _all_nan_target() -> Target:
    sys.path.insert(0, str(CLI))  # broken_kernels imports its neighbour impls.py
    try:
        spec = importlib.util.spec_from_file_location("broken_kernels", CLI / "broken_kernels.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(CLI))
    return Target("hgrn", "all-nan", mod.all_nan_hgrn, kind="external", dtypes=(torch.float32,),
                  traits=Traits(accumulate="float32", cumsum="none"), doc="every output NaN")


TARGET = _all_nan_target()
SPEC = get_spec("hgrn")
PROPS = [p for p in properties_for(SPEC, TARGET) if p.not_applicable(SPEC, TARGET) is None]


def test_self_comparisons_are_covered():
    names = {p.name for p in PROPS}
    assert {"causality-perturb", "causality-nan", "batch-independence", "channel-independence",
            "determinism"} <= names, names


@pytest.mark.parametrize("prop", PROPS, ids=lambda p: p.name)
def test_all_nan_kernel_passes_nothing(prop):
    v = run_property(prop, SPEC, TARGET, torch.float32, get_profile("ci"), max_examples=2)
    assert v.status != "passed", f"{prop.name} passed an all-NaN kernel"
    if v.status == "failed" and prop.name in ("causality-perturb", "causality-nan", "batch-independence",
                                              "channel-independence", "determinism"):
        assert "non-finite where the oracle is finite" in v.reason, v.reason
