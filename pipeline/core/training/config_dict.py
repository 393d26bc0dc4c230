"""Parsing a config dataclass from a YAML/JSON mapping (no Django, no torch: the web process validates run
configs without loading torch)."""


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


class TrainerConfig:
    """What every trainer's config dataclass shares: building from a dict, a plain dict, a validated copy.

    Subclasses are dataclasses that set ``WHAT`` (the name used in messages, e.g. "clustering").
    """

    WHAT = "trainer"

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
