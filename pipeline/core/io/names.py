"""The one rule for names that labelgen stores and puts in paths: datasets, cases, modalities, raters,
prediction sets (no Django, so the manifest reader, the forms, the API and the commands share it).

A name is 1 to ``max_length`` characters of ASCII letters, digits, ``.``, ``_`` and ``-``, starts with a
letter or digit and never contains ``..``. That keeps names safe in file names, URLs, CSV cells and
HTML (no slashes, no control characters, no markup), and within their database columns on every
database (SQLite does not enforce a column's length; PostgreSQL refuses it with an error).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

# Column lengths, in one place so the models, the manifest reader and the API agree.
MAX_LENGTH = {"dataset": 100, "case": 120, "modality": 40, "rater": 80, "prediction_set": 100}

RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, without '..'"


class InvalidName(ValueError):
    """A name that breaks the rule; ``str()`` says which name, what it is, and why."""

    def __init__(self, what, value, reason):
        self.what, self.value, self.reason = what, value, reason
        shown = value if len(value) <= 40 else value[:37] + "..."
        super().__init__(f"{what} {shown!r} {reason}")


def check_name(value, what="name", max_length=None) -> str:
    """Return ``value`` if it is a valid name, else raise :class:`InvalidName` naming ``what`` and the reason.

    ``max_length`` defaults to the column length of ``what`` in :data:`MAX_LENGTH` (100 if unknown).
    """
    if not isinstance(value, str) or not value:
        raise InvalidName(what, str(value or ""), "is empty")
    limit = max_length or MAX_LENGTH.get(what, 100)
    if len(value) > limit:
        raise InvalidName(what, value, f"is {len(value)} characters long (at most {limit})")
    if not _NAME.fullmatch(value):
        raise InvalidName(what, value, f"may only use {RULE}")
    if ".." in value:
        raise InvalidName(what, value, "may not contain '..'")
    return value


def is_valid_name(value, what="name", max_length=None) -> bool:
    try:
        check_name(value, what, max_length)
    except InvalidName:
        return False
    return True
