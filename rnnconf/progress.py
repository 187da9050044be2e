"""What a run prints while it runs: plain result lines on stdout, and a live overall line on stderr.

The live line (``rich``) shows target k/N, property j/M, the item and its examples, elapsed time and an ETA.  It is
drawn only when stderr is a terminal, so piped or captured output never holds it; the lines on stdout are the
record and read the same with or without it.
"""
from __future__ import annotations

import sys
import threading


class Out:
    """Result lines to stdout (looked up at each write, so a redirected ``sys.stdout`` is honoured)."""

    def __init__(self, stream=None):
        self._stream = stream
        self._lock = threading.Lock()

    @property
    def s(self):
        return self._stream or sys.stdout

    def line(self, text: str = ""):
        with self._lock:
            self.s.write(text + "\n")
            self.s.flush()


class Live:
    """The live overall line.  ``total``: items over every target; :meth:`slot` makes one line per running target.
    A no-op unless ``enabled`` (default: stderr is a terminal)."""

    def __init__(self, total: int, n_targets: int, enabled: bool | None = None):
        self.total, self.n_targets = total, n_targets
        self.enabled = _isatty(sys.stderr) if enabled is None else enabled
        self._p = None
        self._overall = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                               console=Console(file=sys.stderr), transient=True,
                               redirect_stdout=_isatty(sys.stdout), redirect_stderr=False)
            self._p.start()
            self._overall = self._p.add_task(self._title(0), total=self.total)
        return self

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.stop()
            self._p = None
        return False

    def _title(self, done_targets: int) -> str:
        return f"targets {done_targets}/{self.n_targets}"

    def target_done(self, done_targets: int):
        if self._p is not None:
            self._p.update(self._overall, description=self._title(done_targets))

    def set_completed(self, x: float):
        if self._p is not None:
            self._p.update(self._overall, completed=x)

    def slot(self, k: int, name: str, n_items: int) -> "Slot":
        return Slot(self, k, name, n_items)


class Slot:
    """One running target's part of the live display: ``target k/N name · property j/M prop dtype · n examples``."""

    def __init__(self, live: Live, k: int, name: str, n_items: int):
        self.live, self.k, self.name, self.n_items = live, k, name, n_items
        self._task = None
        if live._p is not None:
            self._task = live._p.add_task(self._text(0, "smoke call", ""), total=None)

    def _text(self, j: int, what: str, extra: str) -> str:
        prop = f"property {j}/{self.n_items} {what}" if j else what  # j = 0: no position (fuzz rounds)
        return f"  target {self.k}/{self.live.n_targets} {self.name} · {prop}" + (f" · {extra}" if extra else "")

    def item(self, j: int, what: str, examples: int | None = None):
        if self._task is not None:
            extra = f"{examples} examples" if examples else ""
            self.live._p.update(self._task, description=self._text(j, what, extra))

    def advance(self, n: int = 1):
        if self.live._p is not None:
            self.live._p.advance(self.live._overall, n)

    def close(self):
        if self._task is not None:
            self.live._p.remove_task(self._task)
            self._task = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
