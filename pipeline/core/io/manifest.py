"""Reading import manifests (CSV or XLSX) into one list of entries, whatever the format (no Django).

Two formats are accepted:

* **rich**: ``case, file, modality, kind, source, rater, prediction_set, data_split`` and optionally ``input``
  (``file`` and ``case`` required; ``kind`` is ``image`` or ``label``; ``source`` is ``expert``, ``ai``,
  ``prediction`` or ``truth``; ``input``, for expert labels, is ``outline`` (default), ``slices``,
  ``scribbles`` or ``box``: see ``pipeline.core.refinement.inputs``).
* **reference** (the published reference code's): ``FILE, modality, data_split``, label rows named
  ``<modality>_label``; there is no case column, so cases are paired by order within a split (the k-th row
  of every modality of a split is case k), which the result's warnings say.

Relative paths resolve against the manifest's folder. Errors name the line as a spreadsheet shows it
(header = line 1).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from pipeline.core.io.filenames import guess
from pipeline.core.io.names import InvalidName, check_name

KINDS = ("image", "label")
SOURCES = ("expert", "ai", "prediction", "truth")
SPLIT_ALIASES = {"train": "TRAIN", "training": "TRAIN", "val": "VAL", "valid": "VAL", "validation": "VAL",
                 "test": "TEST", "testing": "TEST"}
RICH_COLUMNS = ("case", "file", "modality", "kind", "source", "rater", "prediction_set", "data_split")
INPUTS = ("outline", "slices", "scribbles", "box")  # = pipeline.core.refinement.INPUT_KINDS, without numpy


class ManifestError(ValueError):
    def __init__(self, manifest, line, reason):
        self.manifest, self.line, self.reason = str(manifest), line, reason
        where = f"{Path(self.manifest).name}, line {line}" if line else Path(self.manifest).name
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class ManifestEntry:
    line: int
    case: str
    file: Path
    kind: str
    modality: str = ""
    source: str = ""
    rater: str = ""
    prediction_set: str = ""
    split: str = "TRAIN"
    input: str = "outline"
    dicom_series: str = ""  # sha256 of the source SeriesInstanceUID, for images imported from DICOM


@dataclass
class Manifest:
    path: Path
    format: str
    entries: list[ManifestEntry]
    warnings: list[str] = field(default_factory=list)

    def cases(self) -> dict[str, list[ManifestEntry]]:
        grouped: dict[str, list[ManifestEntry]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.case, []).append(entry)
        return grouped


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line, row)`` pairs of a CSV or XLSX file, cells as stripped strings."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise ManifestError(path, 0, f"not a readable XLSX workbook ({exc})") from None
        raw = [["" if v is None else str(v).strip() for v in row] for row in book.active.iter_rows(values_only=True)]
        book.close()
    else:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                raw = [[cell.strip() for cell in row] for row in csv.reader(f)]
        except UnicodeDecodeError:
            raise ManifestError(path, 0, "not a UTF-8 text CSV file") from None
        except csv.Error as exc:
            raise ManifestError(path, 0, f"not a valid CSV file ({exc})") from None
    if not raw or not any(raw[0]):
        raise ManifestError(path, 1, "the manifest is empty (no header row)")
    header = raw[0]
    rows = []
    for i, cells in enumerate(raw[1:], start=2):
        if not any(cells):
            continue
        if len(cells) > len(header) and any(cells[len(header):]):
            raise ManifestError(path, i, f"{len(cells)} cells but the header has {len(header)} columns")
        rows.append((i, {header[j]: (cells[j] if j < len(cells) else "") for j in range(len(header))}))
    return header, rows


def read_manifest(path, uploads: dict[str, Path] | None = None) -> Manifest:
    """Read the manifest at ``path``; ``file`` cells resolve against its folder.

    With ``uploads`` (``{bare file name: stored path}``, the web and API import), a ``file`` cell must be
    the bare name of one of those uploads and resolves to its stored path: a folder part, an absolute path
    or ``..`` is refused with the same message whatever is on the server's disk, so no other file is ever
    opened and the answer tells nothing about which files exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, 0, "no such file")
    header, rows = read_rows(path)
    lower = [h.strip().lower() for h in header]
    dupes = sorted({h for h in lower if lower.count(h) > 1 and h})
    if dupes:
        raise ManifestError(path, 1, f"duplicate column(s): {', '.join(dupes)}")
    rows = [(line, {k.strip().lower(): v for k, v in row.items()}) for line, row in rows]
    if not rows:
        raise ManifestError(path, 2, "the manifest has a header but no rows")
    if "case" in lower:
        return Manifest(path, "rich", _rich(path, lower, rows, uploads))
    if {"file", "modality", "data_split"} <= set(lower):
        entries, warnings = _reference(path, rows, uploads)
        return Manifest(path, "reference", entries, warnings)
    missing = [c for c in ("case", "file") if c not in lower]
    raise ManifestError(path, 1, f"missing column(s): {', '.join(missing)} (rich format: {', '.join(RICH_COLUMNS)};"
                                 " reference format: FILE, modality, data_split)")


def _split(path, line, value):
    if not value:
        return "TRAIN"
    split = SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise ManifestError(path, line, f"unknown data_split {value!r} (use TRAIN, VAL or TEST)")
    return split


def _name(path, line, column, value, required=False):
    if not value:
        if required:
            raise ManifestError(path, line, f"{column} is empty")
        return ""
    try:
        return check_name(value, column)
    except InvalidName as exc:
        raise ManifestError(path, line, str(exc)) from None


def _file(path, line, value, uploads=None):
    if not value:
        raise ManifestError(path, line, "file is empty")
    if uploads is not None:
        if not is_bare_name(value):
            raise ManifestError(path, line, f"file {value!r} is not the bare name of an uploaded file "
                                            "(no folder, no absolute path, no '..')")
        if value not in uploads:
            raise ManifestError(path, line, f"file {value!r} was not uploaded")
        return Path(uploads[value])
    file = Path(value)
    return file if file.is_absolute() else (path.parent / file)


def is_bare_name(value: str) -> bool:
    """True for a plain file name: no folder part (POSIX or Windows), no drive, not '.' or '..'."""
    return value not in (".", "..") and PurePosixPath(value).name == value and PureWindowsPath(value).name == value


def _rich(path, header, rows, uploads=None):
    if "file" not in header:
        raise ManifestError(path, 1, "missing column: file")
    entries = []
    for line, row in rows:
        kind = (row.get("kind") or "").lower() or ("label" if row.get("source") else "image")
        if kind not in KINDS:
            raise ManifestError(path, line, f"unknown kind {row.get('kind')!r} (use image or label)")
        source = (row.get("source") or "").lower()
        if kind == "label":
            source = source or "expert"
            if source not in SOURCES:
                raise ManifestError(path, line, f"unknown source {row.get('source')!r} (use {', '.join(SOURCES)})")
        elif source:
            raise ManifestError(path, line, f"an image row cannot have source {source!r}")
        modality = _name(path, line, "modality", row.get("modality", ""), required=kind == "image")
        prediction_set = _name(path, line, "prediction_set", row.get("prediction_set", ""))
        if source == "prediction" and not prediction_set:
            raise ManifestError(path, line, "a prediction row needs a prediction_set")
        given = (row.get("input") or "").strip().lower()
        if given and given not in INPUTS:
            raise ManifestError(path, line, f"unknown input {row.get('input')!r} (use {', '.join(INPUTS)})")
        if given not in ("", "outline") and source != "expert":
            raise ManifestError(path, line, f"input {given!r} is for expert labels; this row is "
                                            f"{'an image' if kind == 'image' else 'a ' + source + ' label'}")
        entries.append(ManifestEntry(
            line=line, case=_name(path, line, "case", row.get("case", ""), required=True),
            file=_file(path, line, row.get("file", ""), uploads), kind=kind, modality=modality, source=source,
            rater=_name(path, line, "rater", row.get("rater", "")), prediction_set=prediction_set,
            split=_split(path, line, row.get("data_split", "")), input=given or "outline",
        ))
    return entries


def _reference(path, rows, uploads=None):
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for line, row in rows:
        modality = row.get("modality", "")
        if not modality:
            raise ManifestError(path, line, "modality is empty")
        groups[_split(path, line, row.get("data_split", ""))][modality].append((line, row))
    entries, warnings, seen = [], [], {}
    for split, by_modality in groups.items():
        image_modalities = [m for m in by_modality if not m.lower().endswith("_label")]
        if not image_modalities:
            first = min(line for rows_ in by_modality.values() for line, _ in rows_)
            raise ManifestError(path, first, f"split {split} has labels but no image rows")
        counts = {m: len(r) for m, r in by_modality.items()}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{m}: {n}" for m, n in counts.items())
            first = min(line for rows_ in by_modality.values() for line, _ in rows_)
            raise ManifestError(path, first, f"split {split}: modalities have different row counts ({detail}), "
                                             "so rows cannot be paired into cases")
        for k, (line, row) in enumerate(by_modality[image_modalities[0]]):
            # The case is named after its first image's file, without the modality word (case007_t2 -> case007).
            guessed = guess(Path(row["file"]).name, modalities=image_modalities).case
            case = re.sub(r"[^A-Za-z0-9_.\-]", "-", guessed).lstrip("-_.") or f"{split.lower()}-{k:03d}"
            case = _name(path, line, "case", case)
            if case in seen:
                raise ManifestError(path, line, f"case name {case!r} (from the file name) repeats line {seen[case]}")
            seen[case] = line
            for modality, mrows in by_modality.items():
                mline, mrow = mrows[k]
                if modality.lower().endswith("_label"):
                    drawn_on = modality[: -len("_label")]
                    entries.append(ManifestEntry(mline, case, _file(path, mline, mrow["file"], uploads), "label",
                                                 drawn_on, "expert", _name(path, mline, "rater", mrow.get("rater", "")),
                                                 "", split))
                else:
                    entries.append(ManifestEntry(mline, case, _file(path, mline, mrow["file"], uploads), "image",
                                                 _name(path, mline, "modality", modality), split=split))
        warnings.append(f"reference format: {len(by_modality[image_modalities[0]])} {split} case(s) paired by row "
                        f"order within the split ({', '.join(by_modality)}); check the pairing if rows were sorted")
    return entries, warnings
