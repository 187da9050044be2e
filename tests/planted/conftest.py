"""Collects the planted-bug rows recorded by tests/planted/test_planted.py (also from xdist workers, through the
reports' user_properties) and prints the table bug → properties that caught it at the end of the session."""
import json

_ROWS: dict = {}


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for key, value in getattr(report, "user_properties", ()):
        if key == "planted":
            row = json.loads(value)
            _ROWS[row["bug"]] = row


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    from planted_bugs import format_table

    terminalreporter.section("planted bugs: which properties caught them")
    for line in format_table(list(_ROWS.values())).splitlines():
        terminalreporter.write_line(line)
