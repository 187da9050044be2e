"""The first ten minutes with a broken kernel (tests/cli/broken_kernels.py): one message per broken kernel, crash-safe
by default, a hang costs one timeout, a forward-only kernel is not judged on gradients, fuzz reaches every property,
and what a person reads (summary, index, report cards) says what matters."""
import time

from clihelpers import HERE, impl, report, statuses

BROKEN = HERE / "broken_kernels.py"


def broken(name: str) -> str:
    return f"{BROKEN}:{name}"


def test_wrong_signature_is_one_message_and_one_uncallable_verdict(cli, tmp_path):
    code, out, err = cli("check", "--spec", "hgrn", "--impl", broken("wrong_signature"), "--examples", "2",
                         "--report", tmp_path / "r")
    assert code == 1
    vs = report(tmp_path / "r")["verdicts"]
    assert [(v["prop"], v["status"], v.get("failure_class")) for v in vs] == [("smoke-call", "uncallable", "defect")]
    assert "TypeError" in vs[0]["reason"] and "missing" in vs[0]["reason"]
    assert out.count("TypeError") == 1 and "Traceback" not in out + err  # one message, not one per property
    assert not list((tmp_path / "r").glob("repro_*.py"))


def test_segfault_is_a_crashed_verdict_with_a_report_without_any_flag(cli, tmp_path):
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", broken("segfaults"), "--examples", "2",
                       "--report", tmp_path / "r")
    assert code == 1
    doc = report(tmp_path / "r")
    assert [v["status"] for v in doc["verdicts"]] == ["crashed"]
    assert "SIGSEGV" in doc["verdicts"][0]["reason"]
    assert (tmp_path / "r" / "report.html").is_file() and "CRASHED" in out


def test_a_hang_costs_one_timeout_and_the_rest_is_not_run(cli, tmp_path):
    t0 = time.perf_counter()
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", broken("hangs"), "--examples", "3", "--timeout", "1",
                       "--property", "oracle", "--property", "determinism", "--property", "varlen",
                       "--report", tmp_path / "r")
    wall = time.perf_counter() - t0
    assert code == 1
    vs = report(tmp_path / "r")["verdicts"]
    errored = [i for i, v in enumerate(vs) if v["status"] == "errored"]
    assert len(errored) == 1, [(v["prop"], v["status"]) for v in vs]
    assert "did not return within 1 s" in vs[errored[0]]["reason"]
    hung = vs[errored[0]]["prop"]
    assert all(v["status"] == "passed" for v in vs[:errored[0]])  # T = 1 examples before the first hang
    assert vs[errored[0] + 1:] and all(v["status"] == "not-run" and v["reason"] == f"not run: target hung in {hung}"
                                       for v in vs[errored[0] + 1:])
    assert wall < 60, wall  # one timeout, not one per property


def test_forward_only_target_is_not_judged_on_gradients(cli, tmp_path):
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", broken("forward_only"), "--examples", "2",
                       "--property", "oracle", "--property", "gradients", "--report", tmp_path / "r")
    assert code == 0, out
    doc = report(tmp_path / "r")
    grads = [v for v in doc["verdicts"] if v["prop"] == "gradients"]
    assert grads and all(v["status"] == "not-applicable" and "forward-only" in v["reason"] for v in grads)
    assert {v["status"] for v in doc["verdicts"] if v["prop"] == "oracle"} == {"passed"}
    assert doc["extra"]["smoke_call"]["grad"] is False


def test_no_isolate_runs_in_process_and_isolate_is_accepted(cli, tmp_path):
    for flag in ("--no-isolate", "--isolate"):
        code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--examples", "1", "--property",
                           "determinism", flag, "--report", tmp_path / flag)
        assert code == 0, out
        assert report(tmp_path / flag)["extra"]["isolate"] is (flag == "--isolate")
        assert ("in this process" in out) is (flag == "--no-isolate")


def test_the_time_budget_bounds_a_property_and_the_report_says_how_many_examples(cli, tmp_path):
    """No --examples: up to 100 examples per property, time-boxed; a tiny --budget stops early and says so."""
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--property", "oracle", "--budget", "0.3",
                       "--report", tmp_path / "r")
    assert code == 0, out
    doc = report(tmp_path / "r")
    assert "time box 0.3 s per property" in out and doc["extra"]["budget_s"] == 0.3
    for v in doc["verdicts"]:
        assert v["status"] == "passed" and 1 <= v["examples"] < 100
        assert f"after {v['examples']} examples" in v["reason"]


def test_fuzz_round_robin_touches_every_property(cli, tmp_path):
    code, out, _ = cli("fuzz", "--spec", "hgrn", "--impl", impl("hgrn"), "--time", "8s", "--property", "oracle",
                       "--property", "gradients", "--property", "state-carry", "--property", "determinism",
                       "--report", tmp_path / "f")
    assert code == 0, out
    doc = report(tmp_path / "f")
    assert all(v["status"] == "passed" and v["examples"] >= 1 for v in doc["verdicts"]), statuses(doc)
    assert "examples per property:" in out and "gradients" in out
    det = next(v for v in doc["verdicts"] if v["prop"] == "determinism")
    assert det["worst_ratio"] is None  # nothing measured against a bound: "—", never 0


def test_fuzz_that_runs_out_of_time_says_which_properties_it_missed(cli, tmp_path):
    code, out, _ = cli("fuzz", "--spec", "hgrn", "--impl", impl("hgrn"), "--time", "0.2s", "--property", "oracle",
                       "--property", "state-carry", "--report", tmp_path / "f")
    assert code == 1
    assert "not reached before the time ran out" in out


def test_index_summary_first_failures_first_with_their_reason(cli, tmp_path):
    root = tmp_path / "reports"
    cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--examples", "1", "--property", "oracle",
        "--report", root / "hgrn" / "good")
    cli("check", "--spec", "hgrn", "--impl", impl("broken"), "--examples", "1", "--property", "oracle",
        "--report", root / "hgrn" / "bad")
    code, _, _ = cli("report", root)
    assert code == 0
    page = (root / "index.html").read_text()
    assert page.index("2 targets: 1 pass, 1 fail") < page.index("<table")  # the summary comes first
    table = page[page.index("<h2>Targets"):]
    assert table.index("impls.py:broken") < table.index("impls.py:hgrn")  # failures first
    assert "o[" in page and "× the bound" in page  # the failing target's first reason
    assert "<script>" in page and "sortable" in page
    md = (root / "index.md").read_text()
    assert md.index("2 targets") < md.index("| spec | target")


def test_report_card_shows_the_reproducer_and_no_skip_banner_when_nothing_was_skipped(cli, tmp_path):
    code, _, _ = cli("check", "--spec", "hgrn", "--impl", impl("broken"), "--examples", "1", "--property", "oracle",
                     "--report", tmp_path / "r")
    assert code == 1
    page = (tmp_path / "r" / "report.html").read_text()
    assert "python -m pytest -q repro_oracle_float32.py" in page
    assert "Skipped ≠ passed" not in page  # nothing skipped (the CPU runs bfloat16 correctly for a torch target)
    assert "//" not in report(tmp_path / "r")["verdicts"][0]["target"]  # the name as given, no doubled slash
