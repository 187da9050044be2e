"""Failure classes in the report: JSON (schema 1.1, 1.0 still readable), the badge, and failures first, grouped by
class, each with its baseline."""
import copy

from conftest import V, make_report

from rnnconf.reports import to_badge_svg, to_html, to_markdown, validate

PREC = ("dg[0,15,0]: expected -156.728088 (float64 autograd of hgrn/sequential), got -156.625; |err| = 0.103 > "
        "bound 0.0823 — precision: plain torch float16 (hgrn/sequential, same example): |err| = 0.103 at this element")


def _verdicts(*classes):
    vs = [V("oracle", "float32", "passed", examples=10, worst_ratio=0.3)]
    for i, c in enumerate(classes):
        vs.append(V(f"p{i}", "float16", "failed", reason=PREC if c == "precision" else f"{c} finding", examples=3,
                    observed=0.103, bound=0.0823, failure_class=c, baseline=0.103 if c == "precision" else None,
                    profile_t=[0.1, 1.25] if c == "precision" else None,
                    findings=[{"class": c, "message": "m"}] if c == "dtype-contract" else []))
    return vs


def test_badge_names_the_worst_class():
    assert make_report(_verdicts("precision"))["summary"]["badge"]["message"] == "1/2 · precision"
    doc = make_report(_verdicts("precision", "defect", "dtype-contract"))
    assert doc["summary"]["badge"] == {"label": "rnnconf hgrn", "message": "1/4 · defect", "color": "red"}
    assert doc["summary"]["worst_class"] == "defect"
    assert make_report(_verdicts("precision", "dtype-contract"))["summary"]["worst_class"] == "dtype-contract"
    assert "1/2 · precision" in to_badge_svg(make_report(_verdicts("precision")))
    assert make_report(_verdicts())["summary"]["badge"]["message"] == "1/1"


def test_failures_first_grouped_by_class_with_baseline():
    doc = make_report(_verdicts("precision", "defect", "dtype-contract"))
    md = to_markdown(doc)
    assert md.index("## Failures and errors") < md.index("## Run") < md.index("## Verdicts")
    assert md.index("### Defects (1)") < md.index("### Dtype-contract findings (1)") < md.index("### Precision "
                                                                                                  "findings (1)")
    assert "error **0.103** at the same element" in md and "❌ FAILED (precision)" in md
    html = to_html(doc)
    assert html.index("Failures and errors (3)") < html.index("<h2>Verdicts</h2>")
    assert html.index("Defects (1)") < html.index("Precision findings (1)")
    assert "plain torch float16 (baseline)" in html and 'class="cls cls-precision"' in html


def test_schema_1_0_documents_still_validate():
    doc = make_report(_verdicts("precision"))
    old = copy.deepcopy(doc)
    old["schema_version"] = "1.0"
    for v in old["verdicts"]:
        for k in ("failure_class", "baseline", "profile_t", "findings"):
            v.pop(k)
    old["summary"].pop("worst_class")
    old["summary"]["badge"]["message"] = "1/2"
    validate(old)
    assert "FAILED (defect)" in to_markdown(old)  # a failure without a class reads as a defect
