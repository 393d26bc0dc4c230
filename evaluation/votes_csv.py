"""Read a reader-study vote table from CSV (for ``manage.py study_report --from-csv VOTES.csv``).

Format: a header row, then one row per vote.

======================  ========  ============================================================
column                  required  value
======================  ========  ============================================================
reader, case            yes       non-empty identifiers
arm_a, arm_b            yes       two different arm names
choice                  yes       ``a``, ``b`` or ``tie`` (case-insensitive, spaces trimmed)
left                    no        ``a`` or ``b``: which arm was shown on the left (blank = unknown)
confidence              no        integer 1-5 (blank = not recorded)
time_ms                 no        number >= 0
dice_a, dice_b          no        number in [0, 1]
grade                   no        integer -2..2 from arm_a's side (+2 = arm_a much better)
reread                  no        ``true``/``1`` for a planned re-read (blank/``false``/``0``)
======================  ========  ============================================================

Header names are matched case-insensitively after trimming; other columns are ignored. Errors raise
:class:`VotesCsvError` naming the line as a spreadsheet shows it (header = line 1).
No Django imports.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import IO

import pandas as pd

from evaluation.stats.base import OPTIONAL_COLUMNS, REQUIRED_COLUMNS


class VotesCsvError(ValueError):
    """A vote CSV cannot be used; ``line`` is the 1-based line (header = 1), ``reason`` the bare reason."""

    def __init__(self, line: int, reason: str, source: str = "votes CSV"):
        self.line, self.reason = line, reason
        super().__init__(f"{source}, line {line}: {reason}")


def _open_text(path_or_file) -> tuple[IO[str], str, str]:
    """Text stream, a name for messages, and what to do afterwards: "close", "detach" or "keep"."""
    if isinstance(path_or_file, str | os.PathLike):
        return open(path_or_file, encoding="utf-8-sig", newline=""), os.fspath(path_or_file), "close"
    name = str(getattr(path_or_file, "name", None) or "votes CSV")
    if isinstance(path_or_file, io.TextIOBase):
        return path_or_file, name, "keep"
    # A binary file object (upload, BytesIO): decode it, dropping a UTF-8 byte-order mark. Detached afterwards
    # so that the wrapper does not close the caller's file when it is garbage-collected.
    return io.TextIOWrapper(path_or_file, encoding="utf-8-sig", newline=""), name, "detach"


def _number(text: str, column: str, line: int, source: str) -> float:
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise VotesCsvError(line, f"{column} {text!r} is not a number", source) from None
    if not math.isfinite(value):
        raise VotesCsvError(line, f"{column} {text!r} is not a finite number", source)
    return value


def read_votes_csv(path_or_file) -> pd.DataFrame:
    """Parse and validate a vote CSV.

    Args:
        path_or_file: a path, or an open text or binary file object (UTF-8; a byte-order mark is accepted).

    Returns:
        DataFrame with the required columns plus whichever optional columns the header has, one row per vote
        in file order: identifiers and ``choice``/``left`` as trimmed strings (``choice``/``left`` lower-case,
        blank ``left`` -> None), numbers as float (blank -> NaN). Pass it to
        ``evaluation.stats.study_report``.

    Raises:
        VotesCsvError: empty file, header without votes, missing required column, empty identifier, arm
            compared with itself, unknown choice or left, confidence not an integer 1-5, time_ms not a number
            >= 0, Dice not a number in [0, 1], or a second vote by the same reader on the same case and arm
            pair (in either arm order); the message names the line and the reason.
    """
    stream, source, after = _open_text(path_or_file)
    reader = csv.reader(stream)
    try:
        return _parse(reader, source)
    except UnicodeDecodeError as exc:  # decoding runs ahead in blocks, so the line is approximate
        raise VotesCsvError(reader.line_num + 1, f"not UTF-8 text ({exc.reason})", source) from None
    except csv.Error as exc:
        raise VotesCsvError(reader.line_num, f"malformed CSV ({exc})", source) from None
    finally:
        if after == "close":
            stream.close()
        elif after == "detach":
            stream.detach()


def _parse(reader, source: str) -> pd.DataFrame:
    rows = iter(reader)
    header = next(rows, None)
    while header is not None and not any(cell.strip() for cell in header):
        header = next(rows, None)  # leading blank lines
    if header is None:
        raise VotesCsvError(
            1, f"the file is empty (expected a header row with {', '.join(REQUIRED_COLUMNS)})", source
        )
    header_line = reader.line_num
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise VotesCsvError(
            header_line,
            f"missing required column(s) {', '.join(missing)} "
            f"(header has: {', '.join(n for n in names if n) or 'nothing'})",
            source,
        )
    index = {}
    for k, n in enumerate(names):
        if n in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            if n in index:
                raise VotesCsvError(header_line, f"column {n!r} appears twice in the header", source)
            index[n] = k
    columns = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in index]
    out: dict[str, list] = {c: [] for c in columns}
    seen: dict[tuple[str, str, str, str], int] = {}
    prev_end = reader.line_num
    for cells in rows:
        line, prev_end = prev_end + 1, reader.line_num  # first physical line of this record
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        value = {c: (cells[index[c]].strip() if index[c] < len(cells) else "") for c in columns}
        for c in ("reader", "case", "arm_a", "arm_b"):
            if not value[c]:
                raise VotesCsvError(line, f"empty {c}", source)
        if value["arm_a"] == value["arm_b"]:
            raise VotesCsvError(line, f"arm_a and arm_b are both {value['arm_a']!r}", source)
        choice = value["choice"].lower()
        if choice not in ("a", "b", "tie"):
            raise VotesCsvError(line, f"unknown choice {value['choice']!r} (expected a, b or tie)", source)
        value["choice"] = choice
        if "left" in value:
            left = value["left"].lower()
            if left not in ("", "a", "b"):
                raise VotesCsvError(line, f"unknown left {value['left']!r} (expected a, b or blank)", source)
            value["left"] = left or None
        if "confidence" in value:
            conf = _number(value["confidence"], "confidence", line, source)
            if not math.isnan(conf) and (conf != int(conf) or not 1 <= conf <= 5):
                raise VotesCsvError(
                    line, f"bad confidence {value['confidence']!r} (expected an integer 1-5)", source
                )
            value["confidence"] = conf
        if "time_ms" in value:
            t = _number(value["time_ms"], "time_ms", line, source)
            if t < 0:
                raise VotesCsvError(line, f"time_ms {value['time_ms']!r} is negative", source)
            value["time_ms"] = t
        for c in ("dice_a", "dice_b"):
            if c in value:
                d = _number(value[c], c, line, source)
                if not math.isnan(d) and not 0 <= d <= 1:
                    raise VotesCsvError(line, f"{c} {value[c]!r} is outside [0, 1]", source)
                value[c] = d
        if "grade" in value:
            g = _number(value["grade"], "grade", line, source)
            if not math.isnan(g) and (g != int(g) or not -2 <= g <= 2):
                raise VotesCsvError(line, f"bad grade {value['grade']!r} (expected an integer -2..2)", source)
            value["grade"] = g
        if "reread" in value:
            flag = value["reread"].lower()
            if flag not in ("", "0", "1", "true", "false", "yes", "no"):
                raise VotesCsvError(line, f"bad reread {value['reread']!r} (expected true or false)", source)
            value["reread"] = flag in ("1", "true", "yes")
        a, b = sorted((value["arm_a"], value["arm_b"]))
        key = (value["reader"], value["case"], a, b, bool(value.get("reread")))
        if key in seen:
            raise VotesCsvError(
                line,
                f"duplicate {'re-read' if key[4] else 'vote'}: reader {key[0]!r}, case {key[1]!r}, arms {a!r}/{b!r} "
                f"already voted on line {seen[key]}",
                source,
            )
        seen[key] = line
        for c in columns:
            out[c].append(value[c])
    if not seen:
        raise VotesCsvError(header_line + 1, "no votes after the header row", source)
    frame = pd.DataFrame(out)
    for c in ("reader", "case", "arm_a", "arm_b", "choice") + (("left",) if "left" in out else ()):
        frame[c] = pd.Series(out[c], dtype=object)
    return frame
