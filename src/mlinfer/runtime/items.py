"""Per-item input validation shared by every adapter. Problems become per-item errors, never exceptions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where a vector is made: the workflow image (Plan, Summarize) has none
    import numpy as np

#: Longest text accepted by default (characters). Adapters may lower it (e.g. token limits).
DEFAULT_MAX_CHARS = 20_000


class ItemInputError(ValueError):
    """An item cannot be used; ``type`` is a short machine-readable reason."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.type = error_type


def valid_id(value: Any) -> bool:
    """Ids are strings or integers: they are echoed in every output line, which must stay strict JSON."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def item_id(item: Any, position: int) -> Any:
    """The id reported for an item: its ``id`` field (``None`` when it is not a valid id), or its position
    for bare values."""
    if isinstance(item, Mapping):
        value = item.get("id")
        return value if valid_id(value) else None
    return position


def as_mapping(item: Any, text_field: str = "text") -> Mapping[str, Any]:
    """Accept ``{"id", "text"|"features"}`` objects, a bare string (a text) or a bare list (features)."""
    if isinstance(item, Mapping):
        if "id" not in item:
            raise ItemInputError("MissingId", "item has no 'id' field")
        if not valid_id(item["id"]):
            raise ItemInputError("InvalidId", f"'id' must be a string or an integer, got {type(item['id']).__name__}")
        return item
    if isinstance(item, str):
        return {text_field: item}
    if isinstance(item, list):
        return {"features": item}
    raise ItemInputError(
        "InvalidItem",
        f"item must be an object with '{text_field}' or 'features', a string or a list; got {type(item).__name__}",
    )


def validate_text(value: Any, *, field: str = "text", max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return the text, or raise :class:`ItemInputError` for a non-string, empty or over-long one."""
    if not isinstance(value, str):
        raise ItemInputError("InvalidType", f"'{field}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ItemInputError("EmptyText", f"'{field}' is empty")
    if len(value) > max_chars:
        raise ItemInputError("TextTooLong", f"'{field}' has {len(value)} characters; the limit is {max_chars}")
    return value


def validate_features(value: Any, *, dim: int) -> np.ndarray:
    """Return the vector as float64, or raise for a wrong type, wrong length or non-finite value."""
    if not isinstance(value, list | tuple):
        raise ItemInputError("InvalidType", f"'features' must be a list of numbers, got {type(value).__name__}")
    if len(value) != dim:
        raise ItemInputError("WrongFeatureCount", f"'features' has {len(value)} values; the model expects {dim}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ItemInputError("InvalidType", f"'features'[{i}] must be a number, got {type(v).__name__}")
        if not math.isfinite(v):
            raise ItemInputError("NonFiniteValue", f"'features'[{i}] is {v}; values must be finite")
    import numpy as np

    return np.asarray(value, dtype=np.float64)
