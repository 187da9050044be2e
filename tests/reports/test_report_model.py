"""The report document: schema validity, the environment record, strict JSON, the badge rule, and rejection of bad
documents."""
import copy
import json
import math
import re
import sys

import pytest

from rnnconf.reports import ReportValidationError, as_float, build_report, load_schema, summarize, validate
from rnnconf.reports.model import STATUSES

jsonschema = pytest.importorskip("jsonschema")


# ---- a built report is valid ---------------------------------------------------------------------------------------

def test_report_from_every_status_validates(report):
    assert {v["status"] for v in report["verdicts"]} == set(STATUSES)
    jsonschema.Draft202012Validator.check_schema(load_schema())
    jsonschema.Draft202012Validator(load_schema()).validate(report)
    assert validate(report) is report
    # strict JSON, and unchanged by a round trip
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report


def test_top_level_fields(report):
    assert report["schema_version"] == "1.1"
    assert report["suite"]["name"] == "rnnconf"
    import rnnconf

    assert report["suite"]["version"] == rnnconf.__version__
    assert report["spec"]["id"] == "hgrn" and report["spec"]["paper"] == "arXiv:2311.04823"
    assert set(report["spec"]) == {"id", "version", "title", "paper", "signature"}
    assert report["target"] == {"name": "hgrn/sample_kernel", "kind": "triton",
                                "traits": "accumulate=float32, cumsum=chunk"}
    assert report["profile"] == "ci"
    assert report["duration_s"] == pytest.approx(65.25)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert iso.match(report["started"]) and iso.match(report["finished"])
    assert report["started"] == "2023-11-14T22:13:20.000Z"
    assert [v["prop"] for v in report["verdicts"]][:2] == ["matches_oracle", "matches_oracle"]
    assert "example" not in report["verdicts"][0]
    assert report["extra"] == {"command": "rnnconf check hgrn"}
    assert len(report["measurements"]) == 8


def test_environment_record(make, every_status, monkeypatch):
    import torch

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("TRITON_F32_DEFAULT", "ieee")
    env = make(every_status)["environment"]
    for k in ("python", "platform", "torch", "triton", "numpy", "mpmath", "gmpy2", "device_name", "triton_mode",
              "precision"):
        assert k in env
    assert env["torch"] == torch.__version__
    assert env["device_name"] == "cpu" and env["device"] == "cpu"
    assert env["triton_mode"] == "interpreter"
    assert env["precision"] == {"allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                                "TRITON_F32_DEFAULT": "ieee"}
    for off in ("0", "", "false"):
        monkeypatch.setenv("TRITON_INTERPRET", off)
        assert make(every_status)["environment"]["triton_mode"] in ("native", None)
    monkeypatch.delenv("TRITON_F32_DEFAULT")
    assert make(every_status)["environment"]["precision"]["TRITON_F32_DEFAULT"] is None


def test_real_spec_record(make, every_status):
    from rnnconf.spec.base import get_spec

    spec = get_spec("hgrn")
    doc = make(every_status, spec=spec)
    assert doc["spec"] == {"id": spec.id, "version": spec.version, "title": spec.title, "paper": spec.paper,
                           "signature": spec.signature}


def test_verdict_dicts_are_accepted(make, every_status):
    a = make(every_status)
    b = make([v.to_json() for v in every_status])
    assert a["verdicts"] == b["verdicts"] and a["summary"] == b["summary"]


def test_nonfinite_numbers_become_strings(make, nonfinite_verdict):
    doc = make([nonfinite_verdict])
    v = doc["verdicts"][0]
    assert v["observed"] == "Infinity" and v["worst_ratio"] == "NaN"
    assert v["counterexample"]["inputs"]["x"] == {"shape": [2, 300, 8], "min": "NaN", "max": "Infinity"}
    json.dumps(doc, allow_nan=False)
    assert as_float(v["observed"]) == math.inf and math.isnan(as_float(v["worst_ratio"]))
    assert as_float(None) is None and as_float("x") is None and as_float(3) == 3.0


def test_unknown_status_is_rejected_when_building(make, V_):
    with pytest.raises(ReportValidationError, match="status"):
        make([V_("p", "float32", "succeeded")])


# ---- the badge rule --------------------------------------------------------------------------------------------------

def badge(make, verdicts):
    return make(verdicts)["summary"]["badge"]


def test_badge_all_pass_is_green(make, V_):
    vs = [V_(f"p{i}", d, "passed", examples=5) for i in range(4) for d in ("float32", "float64")]
    vs.append(V_("final_state", "float32", "not-applicable", reason="no final state"))
    b = badge(make, vs)
    assert b == {"label": "rnnconf hgrn", "message": "8/8", "color": "green"}
    assert make(vs)["summary"]["outcome"] == "pass"


def test_badge_some_failed_is_red(make, V_):
    vs = [V_("a", "float32", "passed"), V_("b", "float32", "failed", reason="x"), V_("c", "float32", "passed")]
    assert badge(make, vs) == {"label": "rnnconf hgrn", "message": "2/3", "color": "red"}


def test_badge_errored_is_red_even_internal(make, V_):
    vs = [V_("a", "float32", "passed"), V_("b", "float32", "errored", reason="rnnconf internal error", internal=True)]
    doc = make(vs)
    assert doc["summary"]["badge"]["color"] == "red" and doc["summary"]["badge"]["message"] == "1/2"
    assert doc["summary"]["internal_errors"] == 1


def test_badge_skipped_is_grey_and_never_counts_as_passed(make, V_):
    vs = [V_("a", "float32", "passed"), V_("b", "float16", "skipped", reason="backend cannot run float16")]
    doc = make(vs)
    assert doc["summary"]["badge"] == {"label": "rnnconf hgrn", "message": "1/2", "color": "lightgrey"}
    assert doc["summary"]["required_passed"] == 1 and doc["summary"]["outcome"] == "incomplete"


def test_skip_never_green(make, V_):
    # every verdict skipped: nothing passed, and certainly not green
    vs = [V_(f"p{i}", "float32", "skipped", reason="cannot run here") for i in range(3)]
    assert badge(make, vs) == {"label": "rnnconf hgrn", "message": "0/3", "color": "lightgrey"}
    # 99 passes and one skip are still not green
    vs = [V_(f"p{i}", "float32", "passed") for i in range(99)] + [V_("last", "float16", "skipped", reason="r")]
    assert badge(make, vs)["color"] == "lightgrey" and badge(make, vs)["message"] == "99/100"


def test_failure_beats_skip(make, V_):
    vs = [V_("a", "float32", "skipped", reason="r"), V_("b", "float32", "failed", reason="r")]
    assert badge(make, vs) == {"label": "rnnconf hgrn", "message": "0/2", "color": "red"}


def test_not_applicable_and_advisory_are_outside_the_ratio(make, V_):
    vs = [V_("a", "float32", "passed"), V_("b", "float32", "not-applicable", reason="r"),
          V_("c", "float32", "passed", required=False), V_("d", "float32", "skipped", reason="r", required=False)]
    doc = make(vs)
    assert doc["summary"]["badge"] == {"label": "rnnconf hgrn", "message": "1/1", "color": "green"}
    assert doc["summary"]["counts"] == {"passed": 2, "failed": 0, "errored": 0, "skipped": 1, "not-applicable": 1}
    assert doc["summary"]["total"] == 4


def test_nothing_judged_is_not_green(make, V_):
    assert badge(make, []) == {"label": "rnnconf hgrn", "message": "0/0", "color": "lightgrey"}
    vs = [V_("a", "float32", "not-applicable", reason="r")]
    assert badge(make, vs) == {"label": "rnnconf hgrn", "message": "0/0", "color": "lightgrey"}


def test_summary_of_every_status(report):
    s = report["summary"]
    assert s["counts"] == {"passed": 2, "failed": 1, "errored": 1, "skipped": 1, "not-applicable": 1, "crashed": 1,
                           "uncallable": 1, "not-run": 1}
    assert (s["required_total"], s["required_passed"]) == (8, 2)
    assert (s["required_crashed"], s["required_uncallable"], s["required_not_run"]) == (1, 1, 1)
    assert s["badge"] == {"label": "rnnconf hgrn", "message": "2/8", "color": "red"}


# ---- invalid documents are rejected ----------------------------------------------------------------------------------

def _del(key):
    def f(d):
        del d[key]
    return f


def _set(path, value):
    def f(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value
    return f


def _green_badge_over_skip(d):
    # hand-edit a report: pretend the failed/errored/skipped verdicts do not matter
    d["summary"]["badge"]["color"] = "green"


def _skip_counted_as_pass(d):
    d["summary"]["required_passed"] += 1
    d["summary"]["badge"]["message"] = f"{d['summary']['required_passed']}/{d['summary']['required_total']}"


def _drop_failure(d):
    d["verdicts"] = [v for v in d["verdicts"] if v["status"] != "failed"]


BAD = {
    "missing verdicts": _del("verdicts"),
    "missing environment": _del("environment"),
    "wrong schema version": _set(["schema_version"], "2.0"),
    "unknown top-level key": _set(["verdictz"], []),
    "unknown status": _set(["verdicts", 0, "status"], "ok"),
    "negative examples": _set(["verdicts", 0, "examples"], -1),
    "string ratio": _set(["verdicts", 0, "worst_ratio"], "small"),
    "bare NaN float": _set(["verdicts", 0, "worst_ratio"], float("nan")),
    "required not boolean": _set(["verdicts", 0, "required"], "yes"),
    "bad badge colour": _set(["summary", "badge", "color"], "blue"),
    "bad badge message": _set(["summary", "badge", "message"], "all good"),
    "bad timestamp": _set(["started"], "yesterday"),
    "measurement with T=0": _set(["measurements", 0, "T"], 0),
    "measurement missing ratio": lambda d: d["measurements"][0].pop("ratio"),
    "green badge over failures": _green_badge_over_skip,
    "skip counted as a pass": _skip_counted_as_pass,
    "summary disagrees with verdicts": _drop_failure,
    "not an object": lambda d: None,
}


@pytest.mark.parametrize("name", list(BAD))
def test_invalid_documents_rejected(report, name):
    doc = copy.deepcopy(report)
    BAD[name](doc)
    if name == "not an object":
        doc = ["not", "a", "report"]
    with pytest.raises(ReportValidationError) as ei:
        validate(doc)
    assert ei.value.errors and "invalid rnnconf report" in str(ei.value)


def test_error_message_names_the_path(report):
    doc = copy.deepcopy(report)
    doc["verdicts"][2]["status"] = "ok"
    with pytest.raises(ReportValidationError, match=r"verdicts/2/status"):
        validate(doc)


def test_minimal_check_without_jsonschema(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # `import jsonschema` now raises ImportError
    assert validate(report) is report
    for name in ("missing verdicts", "wrong schema version", "unknown status", "green badge over failures",
                 "skip counted as a pass", "not an object"):
        doc = copy.deepcopy(report)
        BAD[name](doc)
        if name == "not an object":
            doc = 42
        with pytest.raises(ReportValidationError):
            validate(doc)


def test_summarize_matches_build(report):
    assert summarize(report["verdicts"], "hgrn") == report["summary"]


def test_build_report_signature_is_keyword_only(every_status):
    with pytest.raises(TypeError):
        build_report(every_status, None, "t", "triton", "", "ci", "cpu", 0.0, 1.0)  # noqa
