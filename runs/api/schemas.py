"""Request and response shapes of the API; pydantic validates them and they make the OpenAPI.

Every rule the server enforces on a request is stated here, once, in a form the OpenAPI document
carries (type, range, length, pattern, enumeration), so that a request the document calls valid
is never refused for a reason it hides. Types are strict: no boolean for a number, no number
for a string, no unknown fields. The bounds exist so that bad input is a 400 naming the field,
never a database error: integers fit the columns, strings hold no NUL, times are plausible.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, WithJsonSchema

from runs.states import RunState

MAX_AMOUNT = 1e15  # per budget/consumption value: sums stay finite and exact enough
MAX_DIMENSIONS = 20

# What every string the database stores must be: no NUL character (PostgreSQL refuses it).
# Strings must also be valid Unicode — no lone surrogate (UTF-8 cannot encode one) — which
# JSON Schema takes for granted and its regex engines cannot even write.
STORABLE = r"^[^\x00]*$"
# ... and a name is not blank: at least one character that is not whitespace, spelled out (the
# characters str.strip() removes) so that every regex engine reads the class the same way.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"
# A time as RFC 3339 writes it, in the years 1970 to 2999 (as written, before any offset).
WHEN_AT = (r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
           r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
           r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
# next_cursor's form: opaque to clients, but any string of this form is a position, not a 400.
CURSOR = r"^[0-9]{1,17}_[0-9a-f]{32}$"
_WHEN_AT = re.compile(WHEN_AT)


def _rfc3339(value: Any) -> Any:
    """A time is a string in the documented form (pydantic alone would take a number too)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    if not _WHEN_AT.match(value):
        raise ValueError("must be an RFC 3339 date-time (with seconds and an offset) in the "
                         "years 1970-2999")
    return value


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: 3 and 3.0 both, but never true or "3"."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The validator comes last, so it runs first; bounds come before it, or pydantic writes them
# into the document as "ge"/"le" instead of "minimum"/"maximum".
Int = Annotated[int, Strict(), BeforeValidator(_whole_number)]
Percent = Annotated[int, Field(ge=0, le=100), Strict(), BeforeValidator(_whole_number)]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, Strict()]  # strict float still takes an integer, never a boolean
Text = Annotated[str, Field(pattern=STORABLE)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NOT_BLANK)]
QueueName = Annotated[str, Field(min_length=1, max_length=100, pattern=NOT_BLANK)]
Dimension = Annotated[str, Field(min_length=1, max_length=100, pattern=STORABLE)]
Amount = Annotated[float, Strict(), Field(ge=0, le=MAX_AMOUNT)]
def _in_utc(value: datetime) -> datetime:
    # RFC 3339 allows offsets to ±23:59, PostgreSQL only to ±15:59: store the instant in UTC.
    return value.astimezone(UTC)


WhenAt = Annotated[
    datetime,
    AfterValidator(_in_utc),
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": WHEN_AT}),
]

# Any JSON value whose strings (and object keys) the database can store. `JsonValue` is a
# recursive component: pydantic cannot refer to a schema it did not make, so fields carry a
# placeholder that `runs.api.openapi` replaces with the reference.
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_PLACEHOLDER = {"x-runboard-json-value": True}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value. Strings and object keys hold no NUL character; nesting is "
                   "at most 64 levels deep.",
    "anyOf": [
        {"type": "null"}, {"type": "boolean"}, {"type": "number"},
        {"type": "string", "pattern": STORABLE},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "object", "propertyNames": {"pattern": STORABLE},
         "additionalProperties": JSON_VALUE_REF},
    ],
}
Json = Annotated[Any, WithJsonSchema(JSON_VALUE_PLACEHOLDER)]


def _amounts(description: str, *, min_dimensions: int = 0) -> Any:
    """A map of budget dimension to amount; its key rules stated in full (pydantic would state
    a key pattern as patternProperties, which allows every other key)."""
    schema: dict[str, Any] = {
        "type": "object", "description": description, "maxProperties": MAX_DIMENSIONS,
        "propertyNames": {"minLength": 1, "maxLength": 100, "pattern": STORABLE},
        "additionalProperties": {"type": "number", "minimum": 0, "maximum": MAX_AMOUNT},
    }
    if min_dimensions:
        schema["minProperties"] = min_dimensions
    return Annotated[dict[Dimension, Amount],
                     Field(min_length=min_dimensions, max_length=MAX_DIMENSIONS),
                     WithJsonSchema(schema)]


Budget = _amounts('Limit per dimension, e.g. {"tokens": 1000}.')
Consumed = _amounts("Use since the last heartbeat, added to the total.")
Raised = _amounts("New limits; each at least the current one.", min_dimensions=1)


class Input(Schema):
    """Requests refuse unknown fields, so a typo is a 400 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class BackoffIn(Input):
    """Retry delays: base * factor^(attempt-1), capped, minus up to `jitter` of it at random."""

    base: Float = Field(2.0, ge=0, le=86_400)
    factor: Float = Field(2.0, ge=1, le=10)
    cap: Float = Field(300.0, ge=0, le=7 * 86_400)
    jitter: Float = Field(0.1, ge=0, le=1)


class SubmitIn(Input):
    name: Name
    queue: QueueName = "default"
    payload: Json = Field(default=None, description="Any JSON; handed to the executor as is.")
    priority: Int = Field(0, ge=-1_000_000, le=1_000_000, description="Higher is leased first.")
    scheduled_at: WhenAt | None = Field(
        None, description="Not before this time (RFC 3339, years 1970-2999); "
                          "a past time is due now.")
    max_attempts: Int = Field(3, ge=1, le=100)
    backoff: BackoffIn | None = None
    budget: Budget | None = None


class LeaseIn(Input):
    executor: Name | None = Field(
        None, description="Optional; must be the token's executor name if given (else 403).")
    queues: list[QueueName] | None = Field(None, max_length=50)
    limit: Int = Field(1, ge=1, le=100)
    lease_seconds: Int = Field(30, ge=1, le=3600)
    start: Bool = Field(
        False, description="Also start the leased runs (leased → running, one attempt counted): "
                           "one request instead of a lease and a start per run.")


class HeartbeatIn(Input):
    progress: Percent | None = None
    consumed: Consumed | None = None


class CompleteIn(Input):
    result: Json = None


class FailIn(Input):
    error: Annotated[str, Field(min_length=1, max_length=20_000, pattern=STORABLE)]
    retryable: Bool = True


class ReasonIn(Input):
    reason: Annotated[str, Field(max_length=1000, pattern=STORABLE)] = ""


class ReplenishIn(Input):
    budget: Raised


class RunFilters(Input):
    """Query parameters arrive as text: `limit` is parsed from its digits."""

    state: RunState | None = None
    queue: QueueName | None = None
    name: Name | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: Annotated[str, Field(pattern=CURSOR)] | None = Field(
        None, description="Opaque: pass back a `next_cursor` as it was given. Any other value "
                          "of this form reads from that position; a value of another form is "
                          "a 400 `invalid` (field `cursor`).")


class RunSummary(Schema):
    """A run as the board shows it (no payload or result)."""

    id: str
    short_id: str
    name: str
    queue: str
    priority: int
    state: RunState
    version: int
    attempts: int
    max_attempts: int
    progress: int | None
    lease_owner: str
    lease_expires_at: str | None
    heartbeat_at: str | None
    next_attempt_at: str | None
    scheduled_at: str | None
    state_changed_at: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    suspend_reason: str
    suspended_by: str
    budget: dict[str, float]
    consumed: dict[str, float]
    error_summary: str
    rerun_of: str | None


class RunOut(RunSummary):
    """A run with its work: payload, result and the full last error."""

    payload: Any
    result: Any
    last_error: str
    lease_seconds: int


class RunPage(Schema):
    items: list[RunSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end.")


class LeaseOut(Schema):
    runs: list[RunOut]


class HeartbeatOut(Schema):
    run: RunSummary
    stop: bool = Field(description="True when the run is no longer running: stop working on it.")
    message: str


class FieldError(Schema):
    field: str
    message: str


class ErrorOut(Schema):
    status: int
    code: str
    message: str
    current_state: RunState | None = None
    field: str | None = None
    stop: bool | None = Field(None, description="True when an executor must stop this run.")
    errors: list[FieldError] | None = None


class HealthOut(Schema):
    status: str
    checks: dict[str, str]
