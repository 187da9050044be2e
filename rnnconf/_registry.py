"""One small registry for every named record rnnconf keeps (specs, built-in forms, adapters, properties).

A :class:`Registry` is a dict (so ``REG[name]``, ``sorted(REG)`` and iteration work as before) that refuses a name
registered twice and answers an unknown name with one line listing the known ones.  It imports nothing, so every
layer can hold one.
"""
from __future__ import annotations


class Registry(dict):
    def __init__(self, what: str):
        super().__init__()
        self.what = what  # "spec", "built-in form", … — used in the messages

    def add(self, name: str, record):
        """Register ``record`` under ``name``; a second registration of the name is a ValueError."""
        if name in self:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self[name] = record
        return record

    def lookup(self, name: str):
        """``self[name]``, or a KeyError whose one-line message lists the known names."""
        try:
            return self[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(sorted(self))}") from None
