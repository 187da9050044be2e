"""Conformance reports: one document per (spec, target) run, saved as JSON with Markdown, HTML and badge renderings.

``build_report`` makes the document from verdicts, ``validate`` checks it against ``schema.json``, ``write_report``
saves a report directory atomically, ``load_report`` reads one back, and ``rerender`` regenerates the renderings
from a saved JSON.
"""
from .io import FILES, load_report, rerender, write_report
from .model import (
                    SCHEMA_VERSION,
                    ReportValidationError,
                    as_float,
                    build_report,
                    collect_environment,
                    load_schema,
                    summarize,
                    validate,
)
from .render import to_badge_svg, to_html, to_markdown

__all__ = ["FILES", "SCHEMA_VERSION", "ReportValidationError", "as_float", "build_report", "collect_environment",
           "load_report", "load_schema", "rerender", "summarize", "to_badge_svg", "to_html", "to_markdown", "validate",
           "write_report"]
