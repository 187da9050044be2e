"""Writing report directories all-or-nothing, reading them back, and re-rendering from the saved JSON."""
import copy
import json
import os

import pytest

import rnnconf.reports.io as rio
import rnnconf.reports.render as rrender
from rnnconf.reports import ReportValidationError, load_report, plots, rerender, to_html, write_report

NAMES = {"report.json", "report.md", "report.html", "badge.svg"}


def names(doc):
    """The four files plus the plots report.md links to (none without matplotlib)."""
    return NAMES | set(plots.files(doc))


def snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_write_report_files(report, tmp_path):
    out = tmp_path / "nested" / "run1"
    paths = write_report(report, out)
    assert set(paths) == {"json", "md", "html", "badge"} | set(plots.files(report))
    assert {p.name for p in paths.values()} == names(report)
    assert {p.name for p in out.iterdir()} == names(report)  # and nothing else: no temporary leftovers
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    assert paths["html"].read_text(encoding="utf-8") == to_html(report)
    assert paths["badge"].read_text(encoding="utf-8").startswith("<svg")
    assert "chunk_carry" in paths["md"].read_text(encoding="utf-8")
    assert oct(paths["json"].stat().st_mode & 0o777) == oct(0o644)


def test_load_report_round_trip(report, tmp_path):
    write_report(report, tmp_path)
    assert load_report(tmp_path) == report
    assert load_report(tmp_path / "report.json") == report


def test_nonfinite_report_round_trip(make, nonfinite_verdict, tmp_path):
    doc = make([nonfinite_verdict])
    write_report(doc, tmp_path)
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert "Infinity" in text and "NaN" in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in report.json"))
    assert load_report(tmp_path) == doc


@pytest.mark.parametrize("renderer", ["to_markdown", "to_html", "to_badge_svg"])
def test_failed_render_leaves_nothing(report, tmp_path, monkeypatch, renderer):
    def boom(doc, *a, **k):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(rrender, renderer, boom)
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="renderer exploded"):
        write_report(report, out)
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("renderer", ["to_markdown", "to_html", "to_badge_svg"])
def test_failed_rewrite_keeps_the_good_report(report, make, V_, tmp_path, monkeypatch, renderer):
    write_report(report, tmp_path)
    before = snapshot(tmp_path)
    newer = make([V_("a", "float32", "passed", examples=3)])
    monkeypatch.setattr(rrender, renderer, lambda doc, *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(newer, tmp_path)
    assert snapshot(tmp_path) == before


def test_renderer_returning_garbage_writes_nothing(report, tmp_path, monkeypatch):
    monkeypatch.setattr(rrender, "to_html", lambda doc: None)
    with pytest.raises(TypeError, match="report.html"):
        write_report(report, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_failed_replace_rolls_back(report, make, V_, tmp_path, monkeypatch, fail_at):
    """Even if moving the third file into place fails, the directory ends as it began."""
    write_report(report, tmp_path)
    before = snapshot(tmp_path)
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(rio.os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_report(make([V_("a", "float32", "passed")]), tmp_path)
    monkeypatch.setattr(rio.os, "replace", real)
    assert snapshot(tmp_path) == before


def test_failed_replace_into_empty_dir_leaves_nothing(report, tmp_path, monkeypatch):
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(rio.os, "replace", flaky)
    with pytest.raises(OSError):
        write_report(report, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_invalid_document_writes_nothing(report, tmp_path):
    doc = copy.deepcopy(report)
    doc["summary"]["badge"]["color"] = "green"
    with pytest.raises(ReportValidationError):
        write_report(doc, tmp_path / "x")
    assert not (tmp_path / "x").exists() or list((tmp_path / "x").iterdir()) == []


def test_other_files_in_the_directory_are_kept(report, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    write_report(report, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert {p.name for p in tmp_path.iterdir()} == names(report) | {"notes.txt"}


def test_rerender_round_trip(report, tmp_path):
    paths = write_report(report, tmp_path)
    before = snapshot(tmp_path)
    for k in ("md", "html", "badge"):
        paths[k].unlink()
    again = rerender(tmp_path)
    assert set(again) == {"md", "html", "badge", "json"} | set(plots.files(report))
    assert snapshot(tmp_path) == before  # byte-identical renderings, JSON untouched
    # from the JSON path, with stale renderings in place
    paths["html"].write_text("stale")
    rerender(tmp_path / "report.json")
    assert snapshot(tmp_path) == before


def test_rerender_failure_keeps_old_renderings(report, tmp_path, monkeypatch):
    write_report(report, tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.setattr(rrender, "to_badge_svg", lambda doc: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        rerender(tmp_path)
    assert snapshot(tmp_path) == before


def test_load_report_errors(report, tmp_path):
    with pytest.raises(FileNotFoundError, match="no rnnconf report"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text("{ not json")
    with pytest.raises(ReportValidationError, match="not valid JSON"):
        load_report(tmp_path)
    doc = copy.deepcopy(report)
    doc["verdicts"][-2]["status"] = "passed"  # a skip turned into a pass by hand: summary no longer matches
    (tmp_path / "report.json").write_text(json.dumps(doc))
    with pytest.raises(ReportValidationError, match="report.json"):
        load_report(tmp_path)
    with pytest.raises(ReportValidationError):
        rerender(tmp_path)
