"""drawtune's errors: one base class, so that the command line and the rules' scripts can tell a
problem the user can fix (a clear message, no traceback) from a bug."""

from __future__ import annotations


class DrawtuneError(Exception):
    """A problem the user can fix; the message says what and where."""


class InputError(DrawtuneError):
    """A whole input file cannot be read; the message names file, position and cause."""


class ConfigError(DrawtuneError):
    """The workflow's config file breaks its schema or a cross-field check."""


class StageError(DrawtuneError):
    """A stage cannot finish; the message is meant for the user (no traceback needed)."""
