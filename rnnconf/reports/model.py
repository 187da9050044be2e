"""The conformance-report document: building it from verdicts, the badge rule, and validation.

A report is a plain JSON-compatible ``dict`` (see ``schema.json`` next to this module for its exact shape).  It is
strict JSON: non-finite floats (an observed error of ``inf``, a ``nan`` tensor minimum) are stored as the strings
``"Infinity"``, ``"-Infinity"`` and ``"NaN"`` so that every JSON parser can read the file; :func:`as_float` turns
them back into floats.

Badge rule (the one place it is decided — renderers only display it): only *required* verdicts count.

* ``R`` = required verdicts that are applicable (status other than ``not-applicable``); ``P`` = those ``passed``.
  The message is ``"P/R"``.
* ``red`` if any required verdict ``failed``, ``errored``, ``crashed``, ``uncallable`` or ``not-run`` (an
  rnnconf-internal error included: it is never a pass);
  The message then names the most severe failure class, e.g. ``"25/30 · precision"`` or ``"25/30 · defect"``;
* otherwise ``lightgrey`` (incomplete) if any required verdict was ``skipped`` or if nothing was judged (``R == 0``);
* otherwise ``green``.  A skipped verdict never counts as passed, so a skip can never produce a green badge.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import math
import numbers
import os
import platform
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

SCHEMA_VERSION = "1.1"  # 1.1: failure classes (failure_class, baseline, profile_t, findings; summary.worst_class)
READABLE_VERSIONS = ("1.0", "1.1")  # 1.0 documents still validate (every new key is optional)
STATUSES = ("passed", "failed", "errored", "skipped", "not-applicable", "crashed", "uncallable", "not-run")
BAD = ("failed", "errored", "crashed", "uncallable", "not-run")  # statuses that make the outcome "fail"
BADGE_COLORS = ("green", "red", "lightgrey")
CLASSES = ("defect", "dtype-contract", "precision")  # failure classes, most severe first (properties.classify)
NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
TOP_LEVEL_KEYS = ("schema_version", "suite", "spec", "target", "environment", "profile", "started", "finished",
                  "duration_s", "verdicts", "summary")


class ReportValidationError(ValueError):
    """The document is not a valid rnnconf report; ``errors`` lists every problem found as ``"path: message"``."""

    def __init__(self, errors: list[str], where: str | None = None):
        self.errors = list(errors)
        self.where = where
        shown = "\n  - ".join(self.errors[:20])
        more = f"\n  … and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        at = f" {where}" if where else ""
        super().__init__(f"invalid rnnconf report{at} ({len(self.errors)} problem(s)):\n  - {shown}{more}")


# ---- JSON hygiene ------------------------------------------------------------------------------------------------

def jsonable(x):
    """A strict-JSON copy of ``x``: non-finite floats become ``"Infinity"``/``"-Infinity"``/``"NaN"``, tuples become
    lists, mapping keys become strings, anything else unknown becomes its ``repr``."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return float(x)
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, numbers.Integral):  # numpy integers
        return int(x)
    if isinstance(x, numbers.Real):
        return jsonable(float(x))
    shape = getattr(x, "shape", None)  # 0-d numpy arrays / torch tensors
    if shape is not None and tuple(shape) == () and callable(getattr(x, "item", None)):
        return jsonable(x.item())
    return repr(x)


def as_float(x) -> float | None:
    """A report number back as a float (``"Infinity"`` → ``inf`` …); ``None`` for null or anything not numeric."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str) and x in NONFINITE:
        return NONFINITE[x]
    return None


def dumps(doc: dict) -> str:
    """Serialise a report as strict JSON (raises if a bare non-finite float slipped through)."""
    return json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


# ---- environment -------------------------------------------------------------------------------------------------

def _dist_version(name: str) -> str | None:
    try:
        return _md.version(name)
    except _md.PackageNotFoundError:
        return None


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def collect_environment(device: str) -> dict:
    """What the verdicts depend on: versions, the device, how Triton runs, and the float32 precision flags."""
    import torch

    device = str(device)
    device_name = "cpu"
    if device.startswith("cuda"):
        try:
            device_name = torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() \
                else "cuda requested, none available"
        except Exception as e:  # keep the report, say what happened
            device_name = f"unknown cuda device ({type(e).__name__}: {e})"
    elif device != "cpu":
        device_name = device
    triton = _dist_version("triton")
    if _truthy_env("TRITON_INTERPRET"):
        triton_mode = "interpreter"
    else:
        triton_mode = "native" if triton is not None else None
    try:
        allow_tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    except Exception:
        allow_tf32 = None
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": triton,
        "numpy": _dist_version("numpy"),
        "mpmath": _dist_version("mpmath"),
        "gmpy2": _dist_version("gmpy2"),
        "hypothesis": _dist_version("hypothesis"),
        "device": device,
        "device_name": device_name,
        "triton_mode": triton_mode,
        "precision": {
            "allow_tf32": allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "TRITON_F32_DEFAULT": os.environ.get("TRITON_F32_DEFAULT"),
        },
    }


# ---- summary and badge -------------------------------------------------------------------------------------------

def summarize(verdicts: list[dict], spec_id: str) -> dict:
    """Counts per status and the badge, from verdict dicts (as stored in the report)."""
    counts = {s: 0 for s in STATUSES[:5]}  # crashed / uncallable / not-run are counted only when present, so that
    for v in verdicts:  # reports written before those statuses existed stay consistent
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    req = [v for v in verdicts if v.get("required", True) and v["status"] != "not-applicable"]
    by = {s: sum(1 for v in req if v["status"] == s) for s in STATUSES if s != "not-applicable"}
    R, P = len(req), by["passed"]
    # the most severe failure class among required non-passing verdicts (one without a class counts as a defect);
    # None when no verdict carries a class (a report written before classes existed keeps its "P/R" badge)
    classes = [v.get("failure_class") for v in req if v["status"] in BAD]
    worst = next((c for c in CLASSES if c in [k or "defect" for k in classes]), None) if any(classes) else None
    if any(by[s] for s in BAD):
        outcome, color = "fail", "red"
    elif by["skipped"] or R == 0:
        outcome, color = "incomplete", "lightgrey"
    else:
        outcome, color = "pass", "green"
    return {
        "counts": counts,
        "total": len(verdicts),
        "required_total": R,
        "required_passed": P,
        "required_failed": by["failed"],
        "required_errored": by["errored"],
        "required_skipped": by["skipped"],
        "required_crashed": by["crashed"],
        "required_uncallable": by["uncallable"],
        "required_not_run": by["not-run"],
        "internal_errors": sum(1 for v in verdicts if v["status"] == "errored" and v.get("internal")),
        "outcome": outcome,
        "worst_class": worst,
        "badge": {"label": f"rnnconf {spec_id}", "message": f"{P}/{R}" + (f" · {worst}" if worst else ""),
                  "color": color},
    }


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(float(t), _dt.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _spec_record(spec) -> dict:
    keys = ("id", "version", "title", "paper", "signature")
    if isinstance(spec, Mapping):
        missing = [k for k in keys if k not in spec]
        if missing:
            raise TypeError(f"spec mapping lacks {', '.join(missing)}")
        return {k: str(spec[k]) for k in keys}
    return {k: str(getattr(spec, k)) for k in keys}


def _suite_version() -> str:
    import rnnconf

    return rnnconf.__version__


def build_report(verdicts: list, *, spec, target_name: str, target_kind: str, traits: str, profile: str,
                 device: str, started: float, finished: float, extra: dict | None = None) -> dict:
    """The report document for one target of one spec.

    ``verdicts``: :class:`~rnnconf.properties.runner.Verdict` objects (or their ``to_json()`` dicts), in the order
    they should be listed.  ``spec``: a :class:`~rnnconf.spec.base.Spec` (or a mapping with id, version, title, paper,
    signature).  ``started``/``finished``: epoch seconds (``time.time()``).  ``extra``: free-form data kept under
    ``doc["extra"]``, except its ``"measurements"`` entry (a list of ``{"prop", "dtype", "T", "ratio"}``), which
    becomes ``doc["measurements"]`` and feeds the error-vs-length plot.  The document is validated before it is
    returned.
    """
    vs = [jsonable(v.to_json() if hasattr(v, "to_json") else dict(v)) for v in verdicts]
    spec_rec = _spec_record(spec)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": "rnnconf", "version": _suite_version()},
        "spec": spec_rec,
        "target": {"name": str(target_name), "kind": str(target_kind), "traits": str(traits)},
        "environment": jsonable(collect_environment(device)),
        "profile": str(profile),
        "started": _iso(started),
        "finished": _iso(finished),
        "duration_s": max(0.0, float(finished) - float(started)),
        "verdicts": vs,
        "summary": None,
    }
    extra = dict(extra or {})
    if "measurements" in extra:
        doc["measurements"] = jsonable(list(extra.pop("measurements")))
    if extra:
        doc["extra"] = jsonable(extra)
    bad = [f"verdicts/{i}/status: {v.get('status')!r} is not one of {list(STATUSES)}"
           for i, v in enumerate(vs) if v.get("status") not in STATUSES]
    if bad:
        raise ReportValidationError(bad)
    doc["summary"] = summarize(vs, spec_rec["id"])
    validate(doc)
    return doc


# ---- validation --------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(resources.files("rnnconf.reports").joinpath("schema.json").read_text(encoding="utf-8"))


def _schema_errors(doc) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        return _minimal_errors(doc)
    cls = jsonschema.Draft202012Validator
    errs = sorted(cls(load_schema()).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}" for e in errs]


def _minimal_errors(doc) -> list[str]:
    """Structural check used when jsonschema is not installed: the keys and types the renderers rely on."""
    if not isinstance(doc, dict):
        return [f"(document): expected an object, got {type(doc).__name__}"]
    errs = [f"{k}: missing" for k in TOP_LEVEL_KEYS if k not in doc]
    if errs:
        return errs
    if doc["schema_version"] not in READABLE_VERSIONS:
        errs.append(f"schema_version: {doc['schema_version']!r} is not one of {list(READABLE_VERSIONS)}")
    for k, keys in (("suite", ("name", "version")), ("spec", ("id", "version", "title", "paper", "signature")),
                    ("target", ("name", "kind", "traits")), ("environment", ("python", "torch", "device_name")),
                    ("summary", ("counts", "required_total", "required_passed", "badge"))):
        if not isinstance(doc[k], dict):
            errs.append(f"{k}: expected an object")
            continue
        errs += [f"{k}/{kk}: missing" for kk in keys if kk not in doc[k]]
    if not isinstance(doc["verdicts"], list):
        return errs + ["verdicts: expected an array"]
    for i, v in enumerate(doc["verdicts"]):
        if not isinstance(v, dict):
            errs.append(f"verdicts/{i}: expected an object")
            continue
        errs += [f"verdicts/{i}/{kk}: missing" for kk in ("prop", "target", "spec", "dtype", "status", "required")
                 if kk not in v]
        if v.get("status") not in STATUSES:
            errs.append(f"verdicts/{i}/status: {v.get('status')!r} is not one of {list(STATUSES)}")
    m = doc.get("measurements")
    if m is not None and not (isinstance(m, list) and all(isinstance(p, dict) and {"prop", "dtype", "T", "ratio"}
                                                          <= p.keys() for p in m)):
        errs.append("measurements: expected an array of {prop, dtype, T, ratio} objects")
    return errs


def _consistency_errors(doc: dict) -> list[str]:
    """The summary must be what the verdicts say: a hand-edited green badge over a skip is rejected."""
    try:
        want = summarize(doc["verdicts"], doc["spec"]["id"])
    except Exception as e:  # structure already reported by the schema check
        return [f"summary: cannot be recomputed ({type(e).__name__}: {e})"]
    errs = []
    have = doc["summary"]
    for k in ("counts", "required_total", "required_passed", "badge"):
        if have.get(k) != want[k]:
            errs.append(f"summary/{k}: {have.get(k)!r} does not match the verdicts ({want[k]!r})")
    return errs


def validate(doc) -> dict:
    """Check ``doc`` against ``schema.json`` (with jsonschema when installed, else a minimal structural check) and
    check that its summary and badge agree with its verdicts.  Returns ``doc``; raises
    :class:`ReportValidationError` listing every problem."""
    errs = _schema_errors(doc)
    if not errs:
        errs = _consistency_errors(doc)
    if not errs:
        try:
            json.dumps(doc, allow_nan=False)
        except (TypeError, ValueError) as e:
            errs = [f"(document): not strict JSON ({e})"]
    if errs:
        raise ReportValidationError(errs)
    return doc
