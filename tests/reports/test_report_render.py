"""Markdown, HTML and badge renderings of a report."""
import html
import re
import xml.etree.ElementTree as ET

import pytest

from rnnconf.reports import to_badge_svg, to_html, to_markdown
from rnnconf.reports.render import plot_points, text_width, verdict_ratio

REMOTE = re.compile(r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:|ftp:|//)"""
                    r"""|url\(\s*["']?\s*(?:https?:|//)|@import""", re.I)


# ---- Markdown ----------------------------------------------------------------------------------------------------

def test_markdown_has_every_verdict_row(report):
    md = to_markdown(report)
    rows = [l for l in md.splitlines() if l.startswith("| `")]
    for v in report["verdicts"]:
        assert any(f"`{v['prop']}`" in r and f"| {v['dtype']} |" in r for r in rows), v
    # a failed verdict written without a class counts as a defect
    assert "| `chunk_carry` | float32 | ❌ FAILED (defect) | yes | 7 | 3.417 | 800 ms |" in md


def test_markdown_failures_and_skip_line(report, fail_reason):
    md = to_markdown(report)
    assert fail_reason in md
    assert "target raised RuntimeError: illegal memory access" in md
    assert "Skipped ≠ passed" in md and "never counts as a pass" in md
    assert "the Triton interpreter cannot run float16 tl.dot" in md
    assert '"T": 48' in md  # the counterexample, pretty-printed
    assert "rnnconf hgrn: 2/8 (red)" in md
    assert "hgrn/sample_kernel" in md and "arXiv:2311.04823" in md


def test_markdown_escapes_table_cells(make, V_):
    doc = make([V_("a|b", "float32", "skipped", reason="x | y\nz")])
    md = to_markdown(doc)
    assert "`a\\|b`" in md and "x \\| y z" in md


# ---- HTML ----------------------------------------------------------------------------------------------------------

def test_html_has_rows_reason_and_summary(report, fail_reason):
    page = to_html(report)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for v in report["verdicts"]:
        assert f"<code>{v['prop']}</code>" in page
    assert html.escape(fail_reason) in page
    assert "4.100e-05" in page and "1.200e-05" in page  # observed vs bound
    assert "Skipped ≠ passed" in page
    assert "st-failed" in page and "st-passed" in page and "st-skipped" in page and "st-errored" in page
    assert "2/8" in page and "FAIL" in page
    assert "device_name" in page and "float32_matmul_precision" in page


def test_html_is_self_contained(report):
    page = to_html(report)
    assert "<svg" in page
    assert not REMOTE.search(page), REMOTE.search(page)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower() and "<iframe" not in page.lower()
    assert all(src.startswith("data:") for src in re.findall(r'<img[^>]* src="([^"]*)"', page))  # plots inline
    assert page.lower().count("<img") == len(re.findall(r'<img[^>]* src="', page))
    assert "<style>" in page


def test_html_plot_from_measurements_and_counterexamples(report):
    pts = plot_points(report)
    assert {p["source"] for p in pts} == {"measured", "counterexample"}
    ce = [p for p in pts if p["source"] == "counterexample"]
    assert ce == [{"prop": "chunk_carry", "dtype": "float32", "T": 48, "ratio": pytest.approx(4.1 / 1.2),
                   "source": "counterexample", "status": "failed"}]
    page = to_html(report)
    assert '<svg class="plot"' in page and "<polyline" in page
    assert "sequence length T" in page


def test_html_without_per_length_data(make, V_):
    doc = make([V_("a", "float32", "passed", examples=3, worst_ratio=0.5)])
    page = to_html(doc)
    assert "No per-length data" in page and '<svg class="plot"' not in page
    assert "No per-length data" in to_markdown(doc)


def test_html_plot_handles_nonfinite_and_zero(make, V_, nonfinite_verdict):
    doc = make([nonfinite_verdict], extra={"measurements": [{"prop": "p", "dtype": "float16", "T": 8, "ratio": 0.0},
                                                            {"prop": "p", "dtype": "float16", "T": 9, "ratio": 2.0}]})
    page = to_html(doc)
    assert "∞/NaN" in page and "0 (exact)" in page
    assert "∞" in to_markdown(doc)


def test_html_escapes_untrusted_text(make, V_):
    evil = '<script>alert(1)</script><img src="http://x/y.png">'
    doc = make([V_(evil, "float32", "failed", reason=evil, counterexample={"note": evil})])
    page = to_html(doc)
    assert "<script>" not in page and '<img src="http' not in page
    assert "&lt;script&gt;" in page


def test_verdict_ratio_uses_the_failing_example(report):
    by = {(v["prop"], v["dtype"]): v for v in report["verdicts"]}
    assert verdict_ratio(by["chunk_carry", "float32"]) == pytest.approx(4.1 / 1.2)
    assert verdict_ratio(by["matches_oracle", "float32"]) == pytest.approx(0.12)
    assert verdict_ratio(by["gradients", "float16"]) is None
    assert verdict_ratio(by["final_state", "float32"]) is None


# ---- badge ---------------------------------------------------------------------------------------------------------

def _badge(make, V_, statuses):
    return to_badge_svg(make([V_(f"p{i}", "float32", s, reason="r") for i, s in enumerate(statuses)]))


@pytest.mark.parametrize("statuses,message,fill", [
    (["passed"] * 23, "23/23", "#4c1"),
    (["passed", "failed", "passed"], "2/3", "#e05d44"),
    (["passed", "errored"], "1/2", "#e05d44"),
    (["passed", "passed", "skipped"], "2/3", "#9f9f9f"),
    (["skipped"], "0/1", "#9f9f9f"),
    (["not-applicable"], "0/0", "#9f9f9f"),
])
def test_badge_svg(make, V_, statuses, message, fill):
    svg = _badge(make, V_, statuses)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "rnnconf hgrn" in texts and message in texts
    fills = [r.get("fill") for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert fill in fills
    if fill != "#4c1":
        assert "#4c1" not in fills  # never green unless every required verdict passed
    assert root.get("aria-label") == f"rnnconf hgrn: {message}"


def test_badge_width_follows_text(make, V_):
    short = ET.fromstring(_badge(make, V_, ["passed"]))
    long = ET.fromstring(_badge(make, V_, ["passed"] * 1234))
    assert int(long.get("width")) > int(short.get("width"))
    label_w = text_width("rnnconf hgrn")
    assert 60 < label_w < 85  # about what Verdana 11px renders
    assert text_width("mmm") > text_width("iii")


def test_badge_inline_fragment_in_html(report):
    page = to_html(report)
    assert 'id="rnnconf-badge-inline-s"' in page
    assert 'xmlns="http' not in page
