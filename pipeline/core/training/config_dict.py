"""Parsing a config dataclass from a YAML/JSON mapping (no Django, no torch: the web process validates run
configs without loading torch)."""

import re


def config_from_dict(cls, d, what: str):
    """``cls(**d)`` for a config dataclass, refusing a non-mapping or unknown keys with a message naming them
    (``what``: e.g. "clustering", "U-Net"); the dataclass validates the values itself."""
    from dataclasses import fields

    if not isinstance(d, dict):
        raise ValueError(f"{what} config must be a mapping, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known, key=str)
    if unknown:
        raise ValueError(f"unknown {what} config key(s): {', '.join(map(str, unknown))}; "
                         f"known keys: {', '.join(sorted(known))}")
    return cls(**d)


#: The presets every trainer offers, with what they mean; each config class holds its own values for them.
PRESETS = {
    "fast": "fast (CPU-friendly, same method)",
    "paper": "paper (the published settings: 512x512x32, GPU)",
}


def preset_values(table, name, what: str) -> dict:
    """The overrides of preset ``name`` in a config class's ``table`` (which must cover :data:`PRESETS`)."""
    if set(table) != set(PRESETS):
        raise AssertionError(f"{what} presets {sorted(table)} differ from {sorted(PRESETS)}")
    if name not in table:
        raise ValueError(f"unknown {what} preset {name!r}; choose one of {sorted(PRESETS)}")
    return table[name]


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def is_int(value) -> bool:
    import numpy as np

    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def is_num(value) -> bool:
    import numpy as np

    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


class TrainerConfig:
    """What every trainer's config dataclass shares: building from a dict, a plain dict, a validated copy, and
    the field checks its ``__post_init__`` runs (each returns the problems found, with the field's name).

    Subclasses are dataclasses that set ``WHAT`` (the name used in messages, e.g. "clustering").
    """

    WHAT = "trainer"

    def _check_ints(self, lows: dict) -> list[str]:
        """Integer fields ``{name: lowest allowed}``; valid ones are stored as plain ints."""
        problems = []
        for name, low in lows.items():
            value = getattr(self, name)
            if not is_int(value):
                problems.append(f"{name} must be an integer, got {value!r}")
            elif value < low:
                problems.append(f"{name} must be >= {low}, got {value}")
            else:
                setattr(self, name, int(value))
        return problems

    def _check_numbers(self, rules) -> list[str]:
        """Finite number fields ``[(name, ok(value), rule text)]``; valid ones are stored as floats."""
        import numpy as np

        problems = []
        for name, ok, rule in rules:
            value = getattr(self, name)
            if not is_num(value):
                problems.append(f"{name} must be a number, got {value!r}")
            elif not np.isfinite(value) or not ok(value):
                problems.append(f"{name} must be {rule}, got {value!r}")
            else:
                setattr(self, name, float(value))
        return problems

    def _check_switches(self, names=("amp", "augment")) -> list[str]:
        return [f"{name} must be true or false, got {getattr(self, name)!r}" for name in names
                if not isinstance(getattr(self, name), bool)]

    def _check_device(self) -> list[str]:
        device = self.device
        if not isinstance(device, str) or not _DEVICE_RE.match(device.strip().lower()):
            return [f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"]
        return []

    @classmethod
    def from_dict(cls, d):
        """Build from a (YAML/JSON) dict; missing keys take defaults. Unknown keys or bad values -> ``ValueError``
        naming them."""
        return config_from_dict(cls, d, cls.WHAT)

    def to_dict(self) -> dict:
        """Plain JSON-able dict; ``from_dict(to_dict())`` round-trips."""
        from dataclasses import asdict

        return asdict(self)

    def replace(self, **changes):
        """A validated copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)
