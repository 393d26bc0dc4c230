"""Guessing case, modality, kind, source and rater from an uploaded file's name (no Django).

Examples: ``case007_t2.nii.gz`` -> image t2 of case007; ``case007_r2_t1fsce_label.nii.gz`` -> expert label
by rater r2 drawn on t1fsce; ``case007_truth.nii.gz`` -> truth label. The coordinator confirms or edits
every guess before anything is imported.
"""

import re
from dataclasses import asdict, dataclass

SOURCE_WORDS = {"truth": "truth", "gt": "truth", "ground-truth": "truth", "ai": "ai", "pred": "prediction",
                "prediction": "prediction", "seg": "expert", "label": "expert", "mask": "expert", "roi": "expert"}


@dataclass
class Guess:
    case: str
    modality: str
    kind: str
    source: str
    rater: str

    def to_dict(self):
        return asdict(self)


def stem(name: str) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", name.rsplit("/", 1)[-1], flags=re.I)


def guess(name: str, modalities=("t1fsce", "t2")) -> Guess:
    parts = [p for p in re.split(r"[_\s]+", stem(name)) if p]
    lower = [p.lower() for p in parts]
    known = {m.lower(): m for m in modalities}
    modality = next((known[p] for p in lower if p in known), "")
    label_word = next((p for p in lower if p in SOURCE_WORDS), None)
    kind = "label" if label_word else "image"
    source = SOURCE_WORDS[label_word] if label_word else ""
    rater = next((parts[i] for i, p in enumerate(lower) if re.fullmatch(r"(r|rater|reader)\d+", p)), "")
    rest = [parts[i] for i, p in enumerate(lower)
            if p not in known and p not in SOURCE_WORDS and parts[i] != rater]
    case = rest[0] if rest else stem(name)
    if not modality and kind == "image" and len(rest) > 1:
        modality = rest[-1]
    if source == "truth":
        modality = ""
    return Guess(case=case, modality=modality, kind=kind, source=source, rater=rater)
