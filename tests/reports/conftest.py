"""Hand-made verdicts and a report built from them, shared by the report tests."""
import math
from types import SimpleNamespace

import pytest

from rnnconf.properties.runner import Verdict
from rnnconf.reports import build_report

SPEC = SimpleNamespace(
    id="hgrn", version="1", title="HGRN gated diagonal linear recurrence", paper="arXiv:2311.04823",
    signature="fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None) -> (o, final_state)")
TARGET = "hgrn/sample_kernel"
FAIL_REASON = "output o differs from the oracle beyond the derived bound: |err| 4.1e-05 > 1.2e-05 at [0, 37, 3]"


def V(prop, dtype, status, **kw):
    return Verdict(prop, TARGET, "hgrn", dtype, status, **kw)


def verdicts_every_status():
    return [
        V("matches_oracle", "float32", "passed", examples=50, worst_ratio=0.12, seconds=1.5),
        V("matches_oracle", "float64", "passed", examples=50, worst_ratio=0.01, seconds=2.5),
        V("chunk_carry", "float32", "failed", reason=FAIL_REASON, examples=7, worst_ratio=0.4, seconds=0.8,
          observed=4.1e-5, bound=1.2e-5,
          counterexample={"dims": {"B": 1, "T": 48, "D": 4}, "t0": 31, "initial_state": None,
                          "inputs": {"x": {"shape": [1, 48, 4], "min": -3.0, "max": 2.5},
                                     "g": {"shape": [1, 48, 4], "min": -9.0, "max": -0.001}}}),
        V("varlen", "float32", "errored", reason="target raised RuntimeError: illegal memory access", examples=2,
          seconds=0.2, counterexample={"dims": {"B": 1, "T": 77, "D": 2}, "lengths": [30, 47]}),
        V("gradients", "float16", "skipped", reason="the Triton interpreter cannot run float16 tl.dot"),
        V("final_state", "float32", "not-applicable", reason="target does not support final_state"),
        V("determinism", "float32", "crashed", reason="target crashed the process (signal 11: SIGSEGV)"),
        V("smoke-call", "float32", "uncallable", reason="hgrn/sample_kernel(x=float32[1, 1, 1], …) raised TypeError"),
        V("causality-nan", "float32", "not-run", reason="not run: target hung in varlen"),
    ]


def make_report(verdicts, **kw):
    args = dict(spec=SPEC, target_name=TARGET, target_kind="triton", traits="accumulate=float32, cumsum=chunk",
                profile="ci", device="cpu", started=1_700_000_000.0, finished=1_700_000_065.25)
    args.update(kw)
    return build_report(verdicts, **args)


@pytest.fixture
def V_():
    """Factory for hand-made verdicts of the sample target."""
    return V


@pytest.fixture
def every_status():
    return verdicts_every_status()


@pytest.fixture
def make():
    """``make(verdicts, **build_report overrides)`` -> report document."""
    return make_report


@pytest.fixture
def fail_reason():
    return FAIL_REASON


@pytest.fixture
def report():
    return make_report(verdicts_every_status(),
                       extra={"measurements": [{"prop": "matches_oracle", "dtype": d, "T": t, "ratio": r * t / 64}
                                               for d, r in (("float32", 0.1), ("float64", 0.01))
                                               for t in (1, 16, 64, 256)],
                              "command": "rnnconf check hgrn"})


@pytest.fixture
def nonfinite_verdict():
    return V("chunk_carry", "bfloat16", "failed", reason="non-finite output", examples=3, worst_ratio=math.nan,
             observed=math.inf, bound=1e-2,
             counterexample={"dims": {"B": 2, "T": 300, "D": 8},
                             "inputs": {"x": {"shape": [2, 300, 8], "min": math.nan, "max": math.inf}}})
