"""Case names for imported DICOM patients: kept, pseudonymised by a keyed hash, or taken from a mapping CSV
(no Django).

>>> namer = CaseNamer("hash", key=b"site secret")
>>> namer("P001")                       # 'case-' + 12 hex digits; the same key and PatientID, the same name

The hash is an HMAC-SHA256 with a secret key, not a bare hash: PatientIDs are short, and a bare hash of every
possible ID is quick to tabulate. Keep the key to get the same names on a later import.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
from pathlib import Path

from pipeline.core.io.names import InvalidName, check_name

RULES = ("patient-id", "hash", "map")


class CaseNameError(ValueError):
    pass


class CaseNamer:
    """Turn a grouping key (a PatientID, or a StudyInstanceUID) into a case name.

    ``rule``: ``patient-id`` (the key itself, which must follow labelgen's name rule), ``hash``
    (``case-`` + 12 hex digits of HMAC-SHA256(key)) or ``map`` (``mapping``: key -> case name).
    """

    def __init__(self, rule="patient-id", *, key: bytes = b"", mapping: dict[str, str] | None = None):
        if rule not in RULES:
            raise CaseNameError(f"--case-name must be one of {', '.join(RULES)}, not {rule!r}")
        if rule == "hash" and not key:
            raise CaseNameError("the hash rule needs a secret key")
        if rule == "map" and not mapping:
            raise CaseNameError("the map rule needs a mapping CSV with at least one row")
        self.rule, self._key, self.mapping = rule, key, mapping or {}

    @property
    def pseudonymises(self) -> bool:
        return self.rule != "patient-id"

    def __call__(self, key: str) -> str:
        """The case name for ``key``; raises :class:`CaseNameError` saying why there is none."""
        if self.rule == "hash":
            return "case-" + hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()[:12]
        if self.rule == "map":
            if key not in self.mapping:
                raise CaseNameError("is not in the mapping CSV")
            return self.mapping[key]
        if not key:
            raise CaseNameError("has no PatientID; use --case-name hash or map")
        try:
            return check_name(key, "case")
        except InvalidName as exc:
            raise CaseNameError(f"{exc}; use --case-name hash or map") from None


def read_mapping(path) -> dict[str, str]:
    """A two-column CSV ``patient_id,case`` (or ``study_uid,case``) as a dict; errors name the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseNameError(f"{path.name}: cannot be read ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or len(rows[0]) < 2 or rows[0][1].strip().lower() != "case":
        raise CaseNameError(f"{path.name}: the header must be 'patient_id,case' (or 'study_uid,case')")
    mapping, seen = {}, {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise CaseNameError(f"{path.name}, line {line}: needs two cells")
        key, name = row[0].strip(), row[1].strip()
        try:
            check_name(name, "case")
        except InvalidName as exc:
            raise CaseNameError(f"{path.name}, line {line}: {exc}") from None
        if key in mapping:
            raise CaseNameError(f"{path.name}, line {line}: {key!r} is mapped twice")
        if name in seen:
            raise CaseNameError(f"{path.name}, line {line}: case {name!r} already given on line {seen[name]}")
        mapping[key], seen[name] = name, line
    if not mapping:
        raise CaseNameError(f"{path.name}: has no rows")
    return mapping
