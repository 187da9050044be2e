"""Writing and reading report directories, all-or-nothing.

A report directory holds ``report.json`` (the record), ``report.md``, ``report.html`` and ``badge.svg`` (renderings
of it), and the ``plot-*.svg`` files report.md links to (when matplotlib is installed).  :func:`write_report`
validates the document and renders every text *before* touching the directory; each is then written to a temporary
file in the same directory and moved into place with :func:`os.replace` (``report.json`` last).  If anything
fails, the files already replaced are rolled back to their previous contents (or removed if they did not exist)
and every temporary file is deleted, so a failed rewrite never leaves a half-written or mixed report, nor
leftovers.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from . import plots as _plots
from . import render as _render
from .model import ReportValidationError, dumps, validate

FILES = {"md": "report.md", "html": "report.html", "badge": "badge.svg", "json": "report.json"}  # json last
# besides these, the plots linked from report.md (``plot-*.svg``, :mod:`.plots`): keyed by their file name, written
# first, and stale ones removed once the new set is in place


def _name(k: str) -> str:
    return FILES.get(k, k)


def _render_all(doc: dict, with_json: bool) -> dict[str, str]:
    texts = {"md": _render.to_markdown(doc), "html": _render.to_html(doc), "badge": _render.to_badge_svg(doc)}
    texts.update(_plots.files(doc))  # none without matplotlib
    if with_json:
        texts["json"] = dumps(doc)
    for k, t in texts.items():
        if not isinstance(t, str):
            raise TypeError(f"renderer for {_name(k)} returned {type(t).__name__}, not str")
    return texts


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quiet(p) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _write_all(out_dir: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Replace ``out_dir/FILES[k]`` by ``texts[k]`` for every key, all or nothing (see the module docstring)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [k for k in texts if k not in FILES] + [k for k in FILES if k in texts]
    temps: dict[str, str] = {}
    backups: dict[str, str] = {}
    replaced: list[str] = []
    try:
        for k in keys:
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{_name(k)}.", suffix=".tmp")
            temps[k] = tmp
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(texts[k])
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for k in keys:  # keep the previous version of each file until every replacement has succeeded
            dst = out_dir / _name(k)
            if dst.exists():
                fd, bak = tempfile.mkstemp(dir=out_dir, prefix=f".{_name(k)}.", suffix=".bak")
                os.close(fd)
                backups[k] = bak
                shutil.copy2(dst, bak)
        for k in keys:
            os.replace(temps[k], out_dir / _name(k))
            del temps[k]
            replaced.append(k)
    except BaseException:
        for k in reversed(replaced):  # roll back; errors here must not mask the original one
            dst = out_dir / _name(k)
            try:
                if k in backups:
                    os.replace(backups.pop(k), dst)
                else:
                    _unlink_quiet(dst)
            except OSError:
                pass
        raise
    finally:
        for tmp in temps.values():
            _unlink_quiet(tmp)
        for bak in backups.values():
            _unlink_quiet(bak)
    for stale in out_dir.glob(_plots.FILE_PREFIX + "*.svg"):  # plots of an earlier version of this report
        if stale.name not in texts:
            _unlink_quiet(stale)
    _fsync_dir(out_dir)
    return {k: out_dir / _name(k) for k in keys}


def write_report(doc: dict, out_dir) -> dict[str, Path]:
    """Validate ``doc``, render it, and write ``report.json``, ``report.md``, ``report.html`` and ``badge.svg`` into
    ``out_dir`` (created if needed) atomically.  Returns ``{"json", "md", "html", "badge"} -> Path``, plus one
    ``plot-*.svg`` file name -> Path per plot.  Raises
    :class:`~rnnconf.reports.model.ReportValidationError` for an invalid document, or whatever a renderer raised;
    in every failure case the directory is left exactly as it was."""
    validate(doc)
    texts = _render_all(doc, with_json=True)
    return _write_all(Path(out_dir), texts)


def _json_path(path_or_dir) -> Path:
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / FILES["json"]
    if not p.is_file():
        raise FileNotFoundError(f"no rnnconf report at {p} (expected a report directory or a report JSON file)")
    return p


def load_report(path_or_dir) -> dict:
    """Read and validate a saved report: a directory holding ``report.json``, or the JSON file itself."""
    p = _json_path(path_or_dir)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ReportValidationError([f"(document): not valid JSON ({e})"], where=str(p)) from None
    try:
        return validate(doc)
    except ReportValidationError as e:
        raise ReportValidationError(e.errors, where=str(p)) from None


def rerender(dir_or_json) -> dict[str, Path]:
    """Re-render ``report.md``, ``report.html`` and ``badge.svg`` from a saved report JSON, next to it (atomically,
    as :func:`write_report`; the JSON itself is left untouched).  Returns ``{"md", "html", "badge", "json"} -> Path``
    (``"json"`` is the source file)."""
    p = _json_path(dir_or_json)
    doc = load_report(p)
    texts = _render_all(doc, with_json=False)
    paths = _write_all(p.parent, texts)
    paths["json"] = p
    return paths
