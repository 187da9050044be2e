"""The ``rnnconf`` command line: exit statuses, verdict kinds, reports, reproducers, fuzz, --builtin."""
import importlib.metadata
import shutil

import pytest
import torch
from clihelpers import HERE, IMPLS, impl, report, run_subprocess, statuses

FEW = ("--examples", "2")
ORACLE = ("--property", "oracle")
# hgrn's report rows include at least these (generic by structure, then hgrn's own invariants)
HGRN_PROPERTIES = ("oracle", "poisoned-allocations", "causality-perturb", "causality-nan", "state-carry",
                   "batch-independence", "channel-independence", "varlen", "determinism", "gradients",
                   "combine-associative", "tied-gate-bound", "reset-forgets")


# ---- exit status 0 / 1 --------------------------------------------------------------------------------------------
def test_conforming_function_exits_0_with_a_report(cli, tmp_path):
    code, out, err = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), *FEW, "--report", tmp_path / "r")
    assert code == 0, out + err
    doc = report(tmp_path / "r")
    st = statuses(doc)
    assert st[("oracle", "float64")] == st[("varlen", "float32")] == st[("gradients", "float32")] == "passed"
    assert "failed" not in st.values() and "errored" not in st.values()
    assert doc["target"]["kind"] == "external"
    assert "ANY_TRAITS" in doc["target"]["traits"]  # the report says which error model judged it
    from rnnconf.properties import PROPERTIES

    rows = {p for p, _ in st}  # its spec's properties only: no other family's invariant
    assert set(HGRN_PROPERTIES) <= rows and not rows & ({n for n, p in PROPERTIES.items() if p.invariant}
                                                        - set(HGRN_PROPERTIES))
    assert {p.name for p in (tmp_path / "r").iterdir()} >= {"report.json", "report.md", "report.html", "badge.svg"}
    s = doc["summary"]
    assert "✓" in out and f"{s['required_passed']}/{s['required_total']}" in out  # one line per target
    assert "Summary: 1 target(s)" in out  # then the totals
    assert "[ 1/" not in out  # the per-property lines are behind --verbose
    # a rerun into the same directory leaves none of an earlier run's reproducers or counterexamples behind
    (tmp_path / "r" / "repro_oracle_float64.py").write_text("stale")
    (tmp_path / "r" / "counterexamples").mkdir(exist_ok=True)
    (tmp_path / "r" / "counterexamples" / "oracle-float64.pt").write_text("stale")
    code, _, _ = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--examples", "1", *ORACLE,
                     "--report", tmp_path / "r")
    assert code == 0 and not list((tmp_path / "r").glob("repro_*")) and not list((tmp_path / "r").glob("*/*.pt"))
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--examples", "1", "--property", "oracle",
                       "--verbose", "--report", tmp_path / "v")
    assert code == 0 and "[1/4]" in out and "oracle" in out and "required" in out  # lines and the full table


def test_signature_decides_what_applies(cli, tmp_path):
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl("minimal"), *FEW, "--report", tmp_path / "r",
                       "--property", "oracle", "--property", "state-carry", "--property", "varlen")
    assert code == 0, out
    st = statuses(report(tmp_path / "r"))
    assert st[("oracle", "float32")] == "passed"
    assert st[("state-carry", "float32")] == st[("varlen", "float32")] == "not-applicable"


def test_broken_function_exits_1_and_its_reproducer_fails_until_fixed(cli, tmp_path):
    src = tmp_path / "mykernel.py"
    shutil.copy(IMPLS, src)
    rd = tmp_path / "r"
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", f"{src}:broken", *FEW, *ORACLE, "--report", rd)
    assert code == 1
    assert "FAILED" in out and "oracle (float32)" in out and "repro_oracle_float32.py" in out  # the end summary
    repro = rd / "repro_oracle_float32.py"
    assert repro.is_file() and (rd / "counterexamples" / "oracle-float32.pt").is_file()
    example = torch.load(rd / "counterexamples" / "oracle-float32.pt", weights_only=False)
    assert set(example) >= {"dims", "inputs", "initial_state"}

    r = run_subprocess(["-m", "pytest", "-q", "-p", "no:cacheprovider", repro], cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "PropertyFailure" in r.stdout and "1 failed" in r.stdout

    # fix the bug in place: the same reproducer now passes
    src.write_text(src.read_text().replace("return o * 1.01, h", "return o, h"))
    r = run_subprocess(["-m", "pytest", "-q", "-p", "no:cacheprovider", repro], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_skipped_is_not_passed_and_does_not_fail_the_run(cli, tmp_path):
    """A function that launches a Triton kernel (triton_impl.py imports triton lazily, inside the call) is a "triton"
    target: the backend's bfloat16 self-test applies.  Under the interpreter bfloat16 is skipped — exit 0, but the
    badge is grey (incomplete), never green."""
    from rnnconf.kernels._backend import dtype_runnable

    code, out, _ = cli("check", "--spec", "hgrn", "--impl", f"{HERE / 'triton_impl.py'}:hgrn", *FEW, *ORACLE,
                       "--report", tmp_path / "r")
    doc = report(tmp_path / "r")
    assert doc["target"]["kind"] == "triton"
    assert code == 0, out
    if dtype_runnable(torch.bfloat16)[0]:
        pytest.skip("this Triton backend runs bfloat16 correctly: nothing is skipped here")
    assert statuses(doc)[("oracle", "bfloat16")] == "skipped"
    assert doc["summary"]["outcome"] == "incomplete" and doc["summary"]["badge"]["color"] == "lightgrey"


# ---- exit status 2: one line on stderr ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (("check", "--spec", "nope", "--impl", impl("hgrn")), "unknown spec 'nope'"),
    (("check", "--spec", "hgrn", "--impl", "no_such_pkg.mod:fn"), "cannot import module 'no_such_pkg.mod'"),
    (("check", "--spec", "hgrn", "--impl", impl("no_such_function")), "has no function 'no_such_function'"),
    (("check", "--spec", "hgrn", "--impl", "missing/file.py:fn"), "no such file"),
    (("check", "--spec", "hgrn", "--impl", "not-a-target"), "cannot resolve TARGET"),
    (("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--profile", "bogus"), "invalid choice: 'bogus'"),
    (("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--examples", "0"), "positive integer"),
    (("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--timeout", "soon"), "--timeout"),
    (("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--property", "nope"), "unknown property 'nope'"),
    (("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--frobnicate"), "unrecognized arguments"),
    (("check", "--spec", "hgrn"), "--impl"),
    (("fuzz", "--spec", "hgrn", "--impl", impl("hgrn"), "--time", "soon"), "duration"),
    (("report", "no/such/dir"), "no such file or directory"),
    (("frobnicate",), "invalid choice"),
], ids=["unknown-spec", "unimportable-module", "missing-function", "missing-file", "bad-target", "bad-profile",
        "bad-examples", "bad-timeout", "unknown-property", "unknown-option", "missing-impl", "bad-duration",
        "missing-report", "unknown-command"])
def test_usage_errors_exit_2_with_one_line(cli, argv, needle):
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("rnnconf: error: "), err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("body,needle", [
    ("import a_dependency_that_is_not_installed\n", "ModuleNotFoundError: No module named "
                                                     "'a_dependency_that_is_not_installed'"),
    ("raise RuntimeError('no GPU found at import')\n", "RuntimeError: no GPU found at import"),
], ids=["missing-dependency", "raises-at-import"])
def test_import_error_inside_the_target_module_is_one_uncallable_verdict(cli, tmp_path, body, needle):
    """A file or module that exists but fails while importing is a kernel that cannot be called (issue 12): one
    ``uncallable`` verdict naming the import error, a report, exit 1 — not a usage error, and no per-property storm."""
    (tmp_path / "needs_dep.py").write_text(body + "\n\ndef f(x, g):\n    return x\n")
    code, out, err = cli("check", "--spec", "hgrn", "--impl", f"{tmp_path / 'needs_dep.py'}:f", "--examples", "2",
                         "--report", tmp_path / "r")
    assert code == 1, err
    vs = report(tmp_path / "r")["verdicts"]
    assert [(v["prop"], v["status"]) for v in vs] == [("smoke-call", "uncallable")]
    assert needle in vs[0]["reason"] and "importing" in vs[0]["reason"]
    assert "Traceback" not in out + err


def test_cuda_without_cuda_is_a_usage_error(cli):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, _, err = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--device", "cuda")
    assert code == 2 and "no CUDA device" in err and len(err.splitlines()) == 1


# ---- verdict kinds --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,needle", [
    ("raises", "raised RuntimeError: kernel launch failed"),
    ("wrong_shape", "o.shape="),
    ("exits", "raised SystemExit: 3"),
])
def test_a_target_that_cannot_be_called_is_one_uncallable_verdict(cli, tmp_path, name, needle):
    """The smoke call (smallest valid example) fails: one verdict, one message, no per-property storm."""
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl(name), *FEW, "--report", tmp_path / "r")
    assert code == 1
    vs = report(tmp_path / "r")["verdicts"]
    assert [(v["prop"], v["status"]) for v in vs] == [("smoke-call", "uncallable")]
    assert needle in vs[0]["reason"] and out.count(needle) == 1
    assert not list((tmp_path / "r").glob("repro_*.py"))


@pytest.mark.parametrize("name,status,needle", [
    ("nan_out", "failed", "got nan"),
])
def test_verdict_kinds(cli, tmp_path, name, status, needle):
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", impl(name), *FEW, *ORACLE, "--timeout", "0.5",
                       "--report", tmp_path / "r")
    assert code == 1
    doc = report(tmp_path / "r")
    vs = [v for v in doc["verdicts"] if v["prop"] == "oracle"]
    assert len(vs) == 4  # every dtype judged, one verdict each
    for v in vs:
        assert v["status"] == status, v
        assert needle in v["reason"]
        assert v["counterexample"] is not None
        assert (tmp_path / "r" / f"repro_oracle_{v['dtype']}.py").is_file()


def test_hang_is_not_shrunk(cli, tmp_path):
    """Every shrinking attempt of a hang would cost the whole timeout: the first timeout ends the property."""
    import time

    t0 = time.perf_counter()
    code, _, _ = cli("check", "--spec", "hgrn", "--impl", impl("hangs"), "--property", "determinism",
                     "--timeout", "0.5", "--report", tmp_path / "r")
    assert code == 1
    assert time.perf_counter() - t0 < 30


# ---- report re-rendering and the index ----------------------------------------------------------------------------
def test_report_rerenders_from_json(cli, tmp_path):
    rd = tmp_path / "reports" / "hgrn" / "mine"
    code, _, _ = cli("check", "--spec", "hgrn", "--impl", impl("hgrn"), "--examples", "1", *ORACLE, "--report", rd)
    assert code == 0
    before = (rd / "report.html").read_text()
    for f in ("report.html", "report.md", "badge.svg"):
        (rd / f).unlink()
    code, out, err = cli("report", rd)
    assert code == 0, err
    assert (rd / "report.html").read_text() == before
    assert (rd / "report.md").is_file() and (rd / "badge.svg").is_file()
    # a root of report directories: each re-rendered, plus the index
    code, out, _ = cli("report", tmp_path / "reports")
    assert code == 0
    assert "hgrn/mine/badge.svg" in (tmp_path / "reports" / "index.md").read_text()
    assert (tmp_path / "reports" / "index.html").is_file()


def test_report_of_an_invalid_json_is_a_usage_error(cli, tmp_path):
    (tmp_path / "report.json").write_text("{}")
    code, _, err = cli("report", tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "invalid rnnconf report" in err


def test_builtin_writes_one_report_per_target_and_an_index(cli, tmp_path):
    from rnnconf.registry import builtin_forms

    code, out, _ = cli("check", "--builtin", "--spec", "hgrn", "--examples", "1", *ORACLE,
                       "--report", tmp_path / "reports")
    assert code == 0, out
    names = [t.name for t in builtin_forms("hgrn")]
    for n in names:
        assert (tmp_path / "reports" / "hgrn" / n / "report.json").is_file()
    index = (tmp_path / "reports" / "index.md").read_text()
    for n in names:
        assert f"hgrn/{n}/badge.svg" in index
    assert "<img src='hgrn/sequential/badge.svg'" in (tmp_path / "reports" / "index.html").read_text()


# ---- fuzz ----------------------------------------------------------------------------------------------------------
def test_fuzz_stops_at_the_first_failure_with_a_reproducer(cli, tmp_path):
    code, out, _ = cli("fuzz", "--spec", "hgrn", "--impl", impl("broken"), "--time", "60s", *ORACLE,
                       "--report", tmp_path / "f")
    assert code == 1, out
    assert list((tmp_path / "f").glob("repro_oracle_*.py"))
    assert (tmp_path / ".rnnconf" / "examples").is_dir()  # the persistent example database


def test_fuzz_runs_until_the_time_is_up(cli, tmp_path):
    code, out, _ = cli("fuzz", "--spec", "hgrn", "--impl", impl("hgrn"), "--time", "3s", "--property",
                       "determinism", "--report", tmp_path / "f")
    assert code == 0, out
    v = report(tmp_path / "f")["verdicts"][0]
    assert v["status"] == "passed" and v["examples"] >= 1


def test_parse_duration():
    from rnnconf.cli import parse_duration

    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration("1h30m") == 5400
    assert parse_duration("2.5m") == 150 and parse_duration("45") == 45


# ---- list, entry points ---------------------------------------------------------------------------------------------
def test_list(cli):
    code, out, _ = cli("list")
    assert code == 0
    assert "hgrn" in out and "arXiv:2311.04823" in out and "fn(x, g, initial_state=None" in out
    assert "fla:fused_recurrent_hgrn" in out  # adapters are listed whether or not fla is installed


def test_python_dash_m_and_console_script(tmp_path):
    r = run_subprocess(["-m", "rnnconf", "check", "--spec", "nope", "--impl", "x:y"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown spec" in r.stderr
    try:
        eps = importlib.metadata.entry_points(group="console_scripts")
    except Exception:  # pragma: no cover
        pytest.skip("no entry-point metadata")
    ours = [ep for ep in eps if ep.name == "rnnconf"]
    if not ours:
        pytest.skip("rnnconf is not installed as a distribution here")
    assert ours[0].value == "rnnconf.cli:main"


# ---- autotune variants ----------------------------------------------------------------------------------------------
def test_autotune_variants_each_get_an_oracle_verdict():
    """An adapter with autotune configs gets one `oracle[config i: …]` item per config (triton #9230)."""
    import dataclasses

    from rnnconf.isolate import plan, run_item
    from rnnconf.properties import get_profile
    from rnnconf.registry import get_form, get_spec

    spec = get_spec("hgrn")
    base = get_form("hgrn/sequential")
    variants = [(f"BD={bd},num_warps=1", dataclasses.replace(base, name=f"sequential[BD={bd}]")) for bd in (32, 64)]
    items = plan(spec, base, variants)
    vitems = [it for it in items if it.variant is not None]
    assert [it.display for it in vitems] == ["oracle[config 0: BD=32,num_warps=1]",
                                             "oracle[config 1: BD=64,num_warps=1]"]
    assert all(it.max_examples and it.max_examples <= 5 for it in vitems)
    o = run_item(vitems[1], spec, base, get_profile("ci"), variants=dict(variants))
    assert o.verdict.status == "passed" and o.verdict.prop == "oracle[config 1: BD=64,num_warps=1]"
    assert o.verdict.target == "hgrn/sequential[BD=64]"
    # an unlabelled single variant means nothing is autotuned: no extra items
    assert not [it for it in plan(spec, base, [("", base)]) if it.variant is not None]


def test_module_target_is_imported_from_the_current_directory(cli, tmp_path):
    """``package.module:function`` resolves from the working directory, as ``python -m`` would; without --report
    the report goes to reports/<spec>/<target>/ and reports/index.md lists it."""
    (tmp_path / "cwd_kernels_for_rnnconf.py").write_text(IMPLS.read_text())
    code, out, _ = cli("check", "--spec", "hgrn", "--impl", "cwd_kernels_for_rnnconf:hgrn", "--examples", "1",
                       *ORACLE)
    assert code == 0, out
    assert (tmp_path / "reports" / "hgrn" / "cwd_kernels_for_rnnconf_hgrn" / "report.json").is_file()
    assert "cwd_kernels_for_rnnconf_hgrn/badge.svg" in (tmp_path / "reports" / "index.md").read_text()
