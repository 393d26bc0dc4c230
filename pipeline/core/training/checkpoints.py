"""What the trainers share: atomic checkpoint files, per-epoch seeds (no Django). Config parsing is in
:mod:`pipeline.core.training.config_dict` (re-exported here), which needs no torch."""

import os
from pathlib import Path

import numpy as np
import torch

from pipeline.core.training.config_dict import config_from_dict  # noqa: F401 - re-exported


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """An independent seed per (run seed, epoch, stream), so a resumed run draws what an uninterrupted
    one would: e.g. stream 0 case order, 1 augmentation / patches, 2 torch RNG for dropout."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _atomic_write(path: Path, mode: str, write) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # readers see the old file or the complete new one, never half of one


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then move it over ``path``."""
    _atomic_write(path, "wb", lambda fh: torch.save(obj, fh))


def atomic_write_text(text: str, path: Path) -> None:
    _atomic_write(path, "w", lambda fh: fh.write(text))
