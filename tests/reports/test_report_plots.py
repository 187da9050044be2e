"""The matplotlib plots of a report: error against bound per numeric property, error/bound along t for a failing
sequence example; embedded in report.html, linked from report.md, written beside it; off without matplotlib."""
import base64
import re
import xml.etree.ElementTree as ET

import pytest

from rnnconf.reports import plots, to_html, to_markdown, write_report

pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")

PROFILE_T = [0.01 * (t + 1) for t in range(40)] + [1.4, 0.9]  # the bound is crossed at t = 40


@pytest.fixture
def doc(make, V_):
    fail = V_("oracle", "float16", "failed", reason="o[0,40,1]: … > bound", examples=3, observed=2.8e-3,
              bound=2.0e-3, profile_t=PROFILE_T, counterexample={"dims": {"B": 1, "T": 42, "D": 2}})
    ok = V_("oracle", "float32", "passed", examples=3, worst_ratio=0.5)
    meas = [{"prop": "oracle", "dtype": "float32", "T": t, "ratio": r, "err": r * 1e-6, "bound": 1e-6}
            for t, r in ((5, 0.5), (9, 0.0), (17, 0.25))]
    meas.append({"prop": "state-carry", "dtype": "float32", "T": 8, "ratio": 0.1})  # no err/bound: no plot
    return make([fail, ok], extra={"measurements": meas})


def _svg_of(uri: str) -> ET.Element:
    assert uri.startswith("data:image/svg+xml;base64,")
    return ET.fromstring(base64.b64decode(uri.split(",", 1)[1]))


def test_one_scatter_per_numeric_property_and_one_profile_per_failing_sequence(doc):
    figs = plots.figures(doc)
    assert [p.name for p in figs] == ["plot-oracle-errbound.svg", "plot-oracle-float16-along-t.svg"]
    scatter, along = figs
    assert "3 measured example(s)" in scatter.caption and "0 above the line" in scatter.caption
    assert "1 exact (error 0" in scatter.caption and "1 failing example" in scatter.caption
    assert "T = 42" in along.caption and "worst at t = 40" in along.caption and "1.4× the bound" in along.caption
    for p in figs:
        assert ET.fromstring(p.svg).tag.endswith("svg")  # well-formed SVG
    assert plots.figures(doc)[0].svg == scatter.svg  # deterministic: regenerated reports diff cleanly


def test_html_embeds_the_plots_inline(doc):
    page = to_html(doc)
    srcs = re.findall(r'<img alt="[^"]*" src="([^"]*)"', page)
    assert len(srcs) == 2
    for s in srcs:
        assert _svg_of(s).tag.endswith("svg")
    assert "Error against bound" in page and "Plots are off" not in page


def test_markdown_links_the_files_written_beside_it(doc, tmp_path):
    md = to_markdown(doc)
    assert "![oracle: error against bound](plot-oracle-errbound.svg)" in md
    paths = write_report(doc, tmp_path)
    for name in ("plot-oracle-errbound.svg", "plot-oracle-float16-along-t.svg"):
        assert paths[name] == tmp_path / name and (tmp_path / name).read_text().startswith("<svg")


def test_stale_plots_are_removed_on_rewrite(doc, make, V_, tmp_path):
    write_report(doc, tmp_path)
    (tmp_path / "notes.svg").write_text("mine")
    write_report(make([V_("oracle", "float32", "passed", examples=1)]), tmp_path)
    assert not list(tmp_path.glob("plot-*.svg"))
    assert (tmp_path / "notes.svg").read_text() == "mine"


def test_without_matplotlib_the_report_says_plots_are_off(doc, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "unavailable", lambda: plots.OFF)
    assert plots.figures(doc) == []
    assert "Plots are off" in to_html(doc) and "pip install" in to_html(doc)
    assert "Plots are off" in to_markdown(doc)
    write_report(doc, tmp_path)
    assert not list(tmp_path.glob("plot-*.svg"))


def test_run_item_records_err_and_bound():
    """The measurement records carry |err| and bound at each example's worst element (the scatter's data)."""
    from rnnconf.isolate import Item, run_item
    from rnnconf.properties.profiles import get_profile
    from rnnconf.registry import get_form, get_spec

    o = run_item(Item("oracle", "float32"), get_spec("hgrn"), get_form("hgrn/sequential"), get_profile("ci"),
                 max_examples=3)
    assert o.verdict.status == "passed", o.verdict.reason
    recs = [m for m in o.measurements if "bound" in m]
    assert len(recs) == len(o.measurements) == 3, o.measurements
    for m in recs:
        assert 0 <= m["err"] <= m["bound"] and m["bound"] > 0 and m["dtype"] == "float32"
        assert m["ratio"] == pytest.approx(m["err"] / m["bound"], rel=1e-6, abs=1e-12)


def test_a_property_exact_in_every_example_is_named_not_drawn(make, V_):
    doc = make([V_("reset-forgets", "float32", "passed", examples=2, worst_ratio=0.0)],
               extra={"measurements": [{"prop": "reset-forgets", "dtype": "float32", "T": t, "ratio": 0.0,
                                        "err": 0.0, "bound": 1e-7} for t in (3, 4)]})
    assert plots.figures(doc) == []
    assert plots.exact_only(doc) == {"reset-forgets": 2}
    assert "reset-forgets (2)" in to_html(doc) and "reset-forgets (2)" in to_markdown(doc)
