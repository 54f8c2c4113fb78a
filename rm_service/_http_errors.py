"""The service's JSON responses and its error handlers: every body the app answers is encoded
here, once, and safely (a NaN, a numpy number or a lone surrogate in an echoed input never turns
a 422 or a result into a 500).

Why its own module: FastAPI's own handlers failed on exactly those inputs, and the 400 it sends
for a body it cannot read names no cause; these replace them, and ``rm_service.app`` registers
them. Imported by ``rm_service.app`` only, so ``import rm_service`` still imports no FastAPI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rm_service._http_schemas import GradeRequest, error_detail, more_errors, shown_errors
from rm_service._wire import plain_json

__all__ = ["http_error", "json_response", "validation_error"]


# ``check_circular=False``: the encoder's own cycle check keeps a dict of every container it
# enters, a tenth of the cost of encoding ``/grade``'s records. A cycle (only a grader's
# free-form metadata could hold one) still fails, as a ``RecursionError``, which it did before
# too: the cycle's ``ValueError`` sent the body through ``plain_json``, which recursed on it.
_UTF8 = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
)
_ASCII = json.JSONEncoder(allow_nan=False, separators=(",", ":"), check_circular=False)


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response serialised once with the stdlib encoder, compact like ``JSONResponse``.

    ``allow_nan=False``: every number here is a score in [0, 1] or a count, so a NaN would be a
    bug, and an error is better than a body that strict JSON parsers reject.
    """
    try:
        body = _UTF8.encode(content)
    except (TypeError, ValueError):
        # A grader's free-form metadata holding a NaN or a numpy number: made plain, rather
        # than a 500 for the whole batch.
        content = plain_json(content)
        body = _UTF8.encode(content)
    try:
        data = body.encode()
    except UnicodeEncodeError:  # a lone surrogate from the request (an id "\ud800"): escape it
        data = _ASCII.encode(content).encode()
    return Response(data, status_code, headers, media_type="application/json")


async def validation_error(_: Request, exc: Exception) -> Response:
    """FastAPI's 422, with the request's values made safe to echo (see ``error_detail``): its
    own handler failed on ``NaN``, ``Infinity`` or a lone surrogate in ``input`` and answered 500,
    logging a traceback that held the request input. At most ``ERROR_LIMIT`` errors are encoded
    and sent, the rest counted (``shown_errors``), as a backstop to the per-field cap of
    ``FewErrors``: a body of a million bad items made a million errors, a 105 MB answer."""
    assert isinstance(exc, RequestValidationError)
    shown, more = shown_errors(exc.errors())
    shown = [_named_extra(err) for err in shown]
    detail = error_detail(jsonable_encoder(shown)) + more_errors(["body"], len(shown), more)
    return json_response({"detail": detail}, 422)


def _named_extra(err: Any) -> Any:
    """A 422 error for an unknown field, its message naming the fields there are: only
    ``/grade``'s body refuses unknown fields (see ``GradeRequest``)."""
    if not isinstance(err, dict) or err.get("type") != "extra_forbidden":
        return err
    fields = ", ".join(GradeRequest.model_fields)
    return {**err, "msg": f"{err['loc'][-1]!r} is not a field of this request; it has: {fields}"}


def _unparsed(cause: BaseException | None) -> str | None:
    """What FastAPI's 400 "There was an error parsing the body" hid: why ``json.loads`` failed
    on a body other than with a syntax error (those are 422s saying where), or ``None``."""
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the body is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset "
            f"{cause.start}): send the JSON encoded as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return "the body nests arrays or objects too deeply to read"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return "the body holds an integer of more than 4300 digits: send it as a string"
    return None


async def http_error(_: Request, exc: Exception) -> Response:
    """Starlette's ``HTTPException`` handler, encoding the detail as safely as a 422's."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code < 200 or exc.status_code in (204, 205, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = (_unparsed(exc.__cause__) if exc.status_code == 400 else None) or exc.detail
    return json_response({"detail": error_detail(detail)}, exc.status_code, exc.headers)
