"""Isolation (the default; ``--isolate`` is accepted as a no-op alias): a target that crashes becomes a ``crashed``
verdict and the run goes on in a fresh worker; one that hangs in C code is killed, errored, and not called again.

The targets (tests/cli/impls.py) are correct except when an input holds NaN/Inf — which only ``causality-nan``
feeds them — so the crash hits one property and the next one, run after the crash, passes.
"""
import pytest
from clihelpers import impl, report, run_subprocess, statuses

PROPS = ("--property", "causality-nan", "--property", "determinism")


@pytest.mark.parametrize("name,signal_name", [("aborts_on_nan", "SIGABRT"), ("segfaults_on_nan", "SIGSEGV")])
def test_crash_is_crashed_and_the_run_continues(cli, tmp_path, name, signal_name):
    rd = tmp_path / "r"
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl(name), "--examples", "2", *PROPS, "--isolate",
                       "--report", rd)
    assert code == 1, out
    doc = report(rd)
    st = statuses(doc)
    assert st[("causality-nan", "float32")] == "crashed"
    assert st[("determinism", "float32")] == "passed"  # after the crash, in a new worker
    v = next(v for v in doc["verdicts"] if v["prop"] == "causality-nan")
    assert "target crashed the process (signal" in v["reason"] and signal_name in v["reason"]
    # the example that crashed was saved before it ran: there is a reproducer
    assert (rd / "repro_causality-nan_float32.py").is_file()
    assert (rd / "counterexamples" / "causality-nan-float32.pt").is_file()


def test_hang_in_c_is_killed_by_the_parent(cli, tmp_path):
    rd = tmp_path / "r"
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl("hangs_in_c_on_nan"), "--examples", "2", *PROPS,
                       "--isolate", "--timeout", "1", "--report", rd)
    assert code == 1, out
    doc = report(rd)
    st = statuses(doc)
    assert st[("causality-nan", "float32")] == "errored"
    assert st[("determinism", "float32")] == "not-run"  # a target that hung is not called again
    v = next(v for v in doc["verdicts"] if v["prop"] == "causality-nan")
    assert "killed by the parent" in v["reason"]


def test_isolated_run_matches_in_process_verdicts(cli, tmp_path):
    code, _, _ = cli("check", "--spec", "hgrn", "--impl", impl("broken"), "--examples", "2", "--property", "oracle",
                     "--property", "determinism", "--isolate", "--report", tmp_path / "iso")
    assert code == 1
    code, _, _ = cli("check", "--spec", "hgrn", "--impl", impl("broken"), "--examples", "2", "--property", "oracle",
                     "--property", "determinism", "--no-isolate", "--report", tmp_path / "inproc")
    assert code == 1
    a, b = report(tmp_path / "iso"), report(tmp_path / "inproc")
    assert statuses(a) == statuses(b)
    assert [v["reason"] for v in a["verdicts"]] == [v["reason"] for v in b["verdicts"]]


def test_reproducer_of_a_crash_fails(cli, tmp_path):
    rd = tmp_path / "r"
    cli("check", "--spec", "hgrn", "--impl", impl("aborts_on_nan"), "--examples", "2", "--property", "causality-nan",
        "--isolate", "--report", rd)
    r = run_subprocess(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:faulthandler",
                        rd / "repro_causality-nan_float32.py"], cwd=tmp_path)
    assert r.returncode != 0
