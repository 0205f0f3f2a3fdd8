"""One wording for a value outside its choices, shared by the argument parsers, the training arguments and the
objective: what was expected, what came."""

from __future__ import annotations


def check_choice(name: str, value, choices, owner: str = "", note: str = "") -> None:
    """Raises `ValueError("<owner>`name` must be one of <choices>, got <value> (<note>).")` unless value is a choice."""
    if value not in choices:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}`{name}` must be one of {choices}, got {value!r}" + (f" ({note})." if note else "."))
