"""The pytest plugin in a third party's CI: a tiny package in a temporary directory, checked by
``python -m pytest -p rnnconf.pytest_plugin --rnnconf-spec hgrn --rnnconf-impl mypkg.mod:fn``."""
import shutil
import xml.etree.ElementTree as ET

import pytest
from clihelpers import IMPLS, run_subprocess


@pytest.fixture
def third_party(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(IMPLS, pkg / "mod.py")
    return tmp_path


def _run(cwd, fn, *extra):
    xml = cwd / f"junit-{fn}.xml"
    r = run_subprocess(["-m", "pytest", "-p", "rnnconf.pytest_plugin", "-p", "no:cacheprovider", "-rs",
                        "--rnnconf-spec", "hgrn", "--rnnconf-impl", f"mypkg.mod:{fn}", "--rnnconf-examples", "2",
                        "--junitxml", xml, *extra], cwd=cwd, extra_path=cwd)
    return r, xml


def test_conforming_function_passes(third_party):
    r, xml = _run(third_party, "hgrn")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rnnconf[hgrn:mypkg.mod:hgrn]" in r.stdout
    suite = ET.parse(xml).getroot().find("testsuite")
    assert int(suite.get("tests")) >= 16 and suite.get("failures") == "0" and suite.get("errors") == "0"
    names = {tc.get("name") for tc in suite.iter("testcase")}
    assert {"oracle[float32]", "oracle[bfloat16]", "varlen[float32]", "gradients[float16]"} <= names
    # only the spec's properties are items; one the target's declarations exclude is not collected (n/a is not a
    # skip), and the header names it with its reason
    assert not names & {"aaren-combine[float32]", "delta-orthogonal[float32]", "acp-eps-zero[float32]"}
    assert "not applicable to this target, not collected: combine-associative[float32] (target exposes no combine " \
           "operator)" in r.stdout
    assert "skipped" not in r.stdout.splitlines()[-1] and "combine-associative[float32]" not in names


def test_broken_function_fails_with_the_verdict(third_party):
    r, xml = _run(third_party, "broken", "-k", "oracle", "--rnnconf-report", third_party / "rep")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "expected" in r.stdout and "oracle, 30 digits" in r.stdout
    suite = ET.parse(xml).getroot().find("testsuite")
    failed = {tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert {"oracle[float64]", "oracle[float32]"} <= failed  # (1 % is within bfloat16's bound on short inputs)
    assert (third_party / "rep" / "report.json").is_file()
    assert (third_party / "rep" / "repro_oracle_float32.py").is_file()


def test_plugin_is_inert_without_its_options(third_party):
    (third_party / "test_own.py").write_text("def test_own():\n    assert True\n")
    r = run_subprocess(["-m", "pytest", "-p", "rnnconf.pytest_plugin", "-p", "no:cacheprovider", "-q"],
                       cwd=third_party)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
    assert "rnnconf" not in r.stdout


def test_spec_without_impl_is_a_usage_error(third_party):
    r = run_subprocess(["-m", "pytest", "-p", "rnnconf.pytest_plugin", "-p", "no:cacheprovider",
                        "--rnnconf-spec", "hgrn"], cwd=third_party)
    assert r.returncode == 4 and "--rnnconf-impl" in r.stderr
