"""Every request parameter the feed accepts, bounded and checked once, here.

A value outside these bounds is the client's mistake and gets a 4xx naming the
parameter; nothing a client sends may reach the database or ``datetime``
arithmetic unchecked (an id past 64 bits overflows SQLite and PostgreSQL, a
year-9999 time overflows ``astimezone``, a deeply nested cursor overflows the
JSON parser's recursion).

Accepted ranges (the contract, also in the OpenAPI descriptions):

- times: ISO 8601, ``Z`` or a numeric offset (naive = UTC), at most
  :data:`MAX_TIME_CHARS` characters, within the GONG era
  ``[EARLIEST, LATEST)`` = ``[1995-01-01, 2100-01-01)`` UTC: GONG has observed
  since 1995 (H-alpha since 2010), and no product can be newer than 2100;
- product ids: ``1 .. 2**63 - 1`` (a signed 64-bit key in every database);
- cursors: at most :data:`MAX_CURSOR_CHARS` characters of the base64 this API
  hands out, holding ``[obs_time, id, order]`` with those same bounds;
- model versions: 1 to 64 printable ASCII characters, no space (the registry's
  column is 64 characters; NUL would be refused by PostgreSQL as a server error).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import HTTPException, Path, Query, status
from starlette.convertors import Convertor, register_url_convertor

EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_TIME_CHARS = 40
MAX_ID = 2**63 - 1
MAX_CURSOR_CHARS = 200
MODEL_PATTERN = r"^[!-~]{1,64}$"

Order = Literal["asc", "desc"]

TIME_RANGE = f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC"


class BadParameter(HTTPException):
    """A request parameter out of its accepted range: 422 (or 400) naming it."""

    def __init__(self, detail: str, code: int = status.HTTP_422_UNPROCESSABLE_CONTENT) -> None:
        super().__init__(code, detail)


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 parameter as an aware UTC datetime within the GONG era, else 422.

    ``Z`` and numeric offsets are honoured; a time without a zone is taken as UTC.
    """
    if value is None or value == "":
        return None
    text = value.strip()
    if len(text) > MAX_TIME_CHARS:
        raise BadParameter(f"{name}: longer than {MAX_TIME_CHARS} characters: not a time")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(
            f"{name}: not an ISO 8601 time: {value!r} (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    # The year check comes before astimezone, which overflows near years 1 and 9999.
    if not EARLIEST.year - 1 <= t.year <= LATEST.year or not EARLIEST <= t < LATEST:
        raise BadParameter(f"{name}: {value!r} is outside the accepted range {TIME_RANGE}")
    return t.astimezone(UTC)


# -- the keyset cursor ----------------------------------------------------------------
class BadCursor(BadParameter):
    """A cursor that this API did not hand out (or for another ordering): 400."""

    def __init__(self, why: str) -> None:
        super().__init__(f"cursor: {why}", status.HTTP_400_BAD_REQUEST)


def encode_cursor(obs_time: datetime, product_id: int, order: Order) -> str:
    """The opaque cursor after a row with key ``(obs_time, product_id)``."""
    raw = json.dumps([obs_time.isoformat(), product_id, order]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[datetime, int]:
    """The ``(obs_time, id)`` key inside a cursor; :class:`BadCursor` for anything else."""
    not_ours = "not a cursor this API handed out"
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor(f"longer than {MAX_CURSOR_CHARS} characters: {not_ours}")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, RecursionError):  # JSON, base64, UTF-8 and ASCII errors
        raise BadCursor(not_ours) from None
    if not (isinstance(value, list) and len(value) == 3):
        raise BadCursor(not_ours)
    t_text, pid, cursor_order = value
    # bool is an int to Python; a float (1e400 is inf) is not an id.
    if not isinstance(pid, int) or isinstance(pid, bool) or not 1 <= pid <= MAX_ID:
        raise BadCursor(not_ours)
    if not isinstance(t_text, str) or cursor_order not in ("asc", "desc"):
        raise BadCursor(not_ours)
    try:
        t = datetime.fromisoformat(t_text) if len(t_text) <= MAX_TIME_CHARS else None
    except ValueError:
        t = None
    if t is None or t.tzinfo is None or not EARLIEST.year <= t.year < LATEST.year:
        raise BadCursor(not_ours)
    if cursor_order != order:
        raise BadCursor(f"made for order={cursor_order}, not order={order}")
    return t.astimezone(UTC), pid


# -- path and query parameter types (FastAPI answers 422 outside them) -----------------
class Id64Convertor(Convertor[int]):
    """Route convertor ``{name:id64}``: 1 to 19 digits (longer can never be a product: 404)."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id64", Id64Convertor())

ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="Product id (1 to 2^63-1)")]
ModelParam = Annotated[
    str | None,
    Query(pattern=MODEL_PATTERN, description="only this model version (1-64 printable characters)"),
]
ModelVersionPath = Annotated[str, Path(pattern=MODEL_PATTERN, description="A registered model version")]
# The cursor's length is checked by decode_cursor, so that every bad cursor gets the same 400.
CursorParam = Annotated[
    str | None,
    Query(description=f"next_cursor of the previous page (at most {MAX_CURSOR_CHARS} characters)"),
]
