"""The host API, `/api/v1`: bearer API keys, JSON in and out.

Errors are JSON `{"error": code, "message": plain words}` with 400 (malformed
JSON, or an appointment id outside the documented set: `bad_id`), 401 (no or
bad key), 404 (unknown staff or appointment), 409 (conflict), 413 (body too
large), 422 (valid JSON, invalid values), 503 (`busy`: the database is locked
by another process; Retry-After says when to try again) or 500 (`internal`,
with no details); bad input changes nothing.

The API is described in web/openapi.json (OpenAPI 3.1, written by hand and held to this code by
tests/test_openapi.py), served as it is at `GET /api/v1/openapi.json`, the one address here that
needs no key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from pathlib import Path

import flask
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import models as m
from core import actions, hostapi
from web.pages import RETRY_AFTER, runtime

log = logging.getLogger("calsync.web")

PREFIX = "/api/v1"
blueprint = flask.Blueprint("api", __name__, url_prefix=PREFIX)

MAX_BODY = 32 * 1024
MAX_DEPTH = 20  # an appointment is one flat object; deeper nesting is only ever an attack on the parser
APPOINTMENT_FIELDS = {"staff", "start", "end", "subject", "description", "location", "timezone"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str):
    response = flask.jsonify({"error": code, "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="calsync"'
    return response


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _error(exc.status, exc.code, exc.message)


@blueprint.errorhandler(actions.ActionError)
def _action_error(exc: actions.ActionError):
    if isinstance(exc, actions.NotFoundError):
        return _error(404, "not_found", str(exc))
    if isinstance(exc, actions.InvalidId):
        return _error(400, "bad_id", str(exc))
    if isinstance(exc, actions.InvalidInput):
        return _error(422, "invalid", str(exc))
    return _error(409, "conflict", str(exc))


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if isinstance(exc, RequestEntityTooLarge):
        return _error(413, "too_large", f"the body may be at most {MAX_BODY} bytes")
    return _error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


@blueprint.errorhandler(Exception)
def unexpected(exc: Exception):
    """Whatever else went wrong is still JSON: a busy database says when to retry, the rest says nothing of the inside."""
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if m.is_busy(exc):
        log.warning("host API %s %s: %s", flask.request.method, flask.request.endpoint, m.BUSY_MESSAGE)
        response = _error(503, "busy", m.BUSY_MESSAGE)
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response
    flask.current_app.logger.error("Exception on %s [%s]", flask.request.path, flask.request.method, exc_info=exc)
    return _error(500, "internal", "something went wrong on our side; nothing was changed, try again in a few minutes")


def _unrouted(exc: HTTPException):
    # A 404 (no route) or 405 (a method the route does not take) is decided while
    # matching the URL, before any blueprint is chosen, so the blueprint's own
    # handler never sees it and the app's HTML page would answer the host.
    path = flask.request.path
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        from web.pages import http_error as html_page

        return html_page(exc)
    if exc.code == 405:
        response = _error(405, "method_not_allowed", f"{flask.request.method} is not allowed here")
        response.headers["Allow"] = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
        return response
    return _error(404, "not_found", "there is no API endpoint at this address")


blueprint.app_errorhandler(404)(_unrouted)
blueprint.app_errorhandler(405)(_unrouted)


OPENAPI_PATH = Path(__file__).with_name("openapi.json")  # package data: installed beside this module


@functools.cache
def _openapi_document() -> tuple[bytes, str]:
    """web/openapi.json as it is on disk, and its ETag: read (and checked to be JSON) once per process."""
    raw = OPENAPI_PATH.read_bytes()
    json.loads(raw)
    return raw, hashlib.sha256(raw).hexdigest()[:32]


@blueprint.get("/openapi.json")
def openapi():
    """The OpenAPI description of this API: public, so it needs no key (see _authenticate)."""
    raw, etag = _openapi_document()
    response = flask.Response(raw, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response.make_conditional(flask.request)


PUBLIC_ENDPOINTS = {"api.openapi"}


@blueprint.before_request
def _authenticate():
    if flask.request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = flask.request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized", "send an API key as 'Authorization: Bearer <key>' (see `apikey create`)")
    api_key = hostapi.verify_key(key.strip())
    if api_key is None:
        raise ApiError(401, "unauthorized", "the API key is unknown or revoked")
    flask.g.api_key = api_key.name


def _json_body() -> dict:
    length = flask.request.content_length
    if length is not None and length > MAX_BODY:
        raise ApiError(413, "too_large", f"the body may be at most {MAX_BODY} bytes")
    raw = flask.request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body may be at most {MAX_BODY} bytes")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def parse_json(raw: bytes):
    """Strict JSON: UTF-8, nested at most MAX_DEPTH deep, no NaN/Infinity, no repeated keys, no broken text."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "the body is not valid JSON: it is not UTF-8 text") from None
    if _depth(text) > MAX_DEPTH:
        raise ApiError(400, "bad_json", f"the body nests arrays or objects more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text or "null", object_pairs_hook=_object, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None


def _depth(text: str) -> int:
    """How deep arrays and objects nest (brackets inside strings do not count), before the parser
    recurses into them; stops counting past MAX_DEPTH."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _object(pairs: list) -> dict:
    """An object without repeated keys (which parsers resolve differently) or strings that cannot be stored."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ApiError(400, "bad_json", f"the key {key[:50]!r} appears twice in one object of the body")
        for text in (key, value, *(value if isinstance(value, list) else ())):
            if isinstance(text, str) and re.search("[\ud800-\udfff]", text):
                raise ApiError(400, "bad_json", "the body is not valid text: a string holds an unpaired surrogate (\\ud800-\\udfff)")
        seen[key] = value
    return seen


def _no_constant(name: str):
    raise ApiError(400, "bad_json", f"the body is not valid JSON: {name} is not a number JSON allows")


def _actor() -> str:
    return f"api:{flask.g.api_key}"


@blueprint.put("/appointments/<appointment_id>")
def put_appointment(appointment_id: str):
    body = _json_body()
    unknown = sorted(set(body) - APPOINTMENT_FIELDS)
    if unknown:
        raise ApiError(422, "invalid", f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(APPOINTMENT_FIELDS))}")
    for field in ("staff", "start", "end", "subject"):
        if not isinstance(body.get(field), str) or not body[field].strip():
            raise ApiError(422, "invalid", f"'{field}' is required (a string)")
    for field in ("description", "location", "timezone"):
        if field in body and not isinstance(body[field], str):
            raise ApiError(422, "invalid", f"'{field}' must be a string")
    result = actions.upsert_appointment(
        runtime(),
        appointment_id,
        body["staff"],
        body["start"],
        body["end"],
        body["subject"],
        body.get("description", ""),
        body.get("location", ""),
        timezone=body.get("timezone") or None,
        actor=_actor(),
    )
    status = 201 if result["change"] == "created" else 200
    return flask.jsonify(result), status


@blueprint.delete("/appointments/<appointment_id>")
def delete_appointment(appointment_id: str):
    return flask.jsonify(actions.cancel_appointment(runtime(), appointment_id, actor=_actor()))


@blueprint.get("/appointments/<appointment_id>")
def get_appointment(appointment_id: str):
    return flask.jsonify(actions.get_appointment(runtime(), appointment_id))


@blueprint.get("/staff/<email>/busy")
def staff_busy(email: str):
    start, end = flask.request.args.get("from"), flask.request.args.get("to")
    if not start or not end:
        raise ApiError(400, "missing_range", "give the range as ?from=ISO&to=ISO (UTC offsets allowed)")
    return flask.jsonify(actions.busy_times(runtime(), email, start, end))


@blueprint.get("/staff/<email>/connections")
def staff_connections(email: str):
    return flask.jsonify({"staff": email.strip().lower(), "connections": actions.staff_connections(runtime(), email)})
