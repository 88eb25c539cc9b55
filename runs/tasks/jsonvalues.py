"""Task arguments and return values travel as JSON: refuse early what JSON cannot carry."""

from __future__ import annotations

import json
from typing import Any


def as_json(value: Any, *, error: type[Exception], what: str) -> Any:
    """`value` as a worker or a reader will get it back (tuples become lists, keys strings),
    or `error` naming `what` when JSON cannot carry it (objects, sets, NaN, infinities)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as problem:
        raise error(f"{what} must be JSON-serializable: {problem}") from None
