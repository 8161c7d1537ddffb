"""The push webhooks: ``POST /push/google`` and ``POST /push/microsoft`` (core.push_inbox decides).

Both answer at once: a notification only asks for a sync, which the scheduler runs.
No cookies, no forms (CSRF-exempt); what proves a notification is the channel's secret.
"""

from __future__ import annotations

import json

import flask
from werkzeug.exceptions import RequestEntityTooLarge

import models as m
from core import push_inbox
from web.pages import RETRY_AFTER

blueprint = flask.Blueprint("push", __name__, url_prefix="/push")

MAX_GRAPH_BODY = 1024 * 1024  # a Graph delivery batches notifications (~600 bytes each)
MAX_DEPTH = 32


def _answer(answer: push_inbox.Answer) -> flask.Response:
    response = flask.Response(answer.text, status=answer.status, content_type=answer.content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _busy(exc: Exception) -> flask.Response | None:
    """The database is locked by another process: the provider delivers again later."""
    if not m.is_busy(exc):
        return None
    response = _answer(push_inbox.Answer(503, "busy"))
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


@blueprint.post("/google")
def google():
    try:
        return _answer(push_inbox.google(flask.request.headers))
    except Exception as exc:
        busy = _busy(exc)
        if busy is None:
            raise
        return busy


def _too_deep(value, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


@blueprint.post("/microsoft")
def microsoft():
    token = flask.request.args.get("validationToken")
    if token is not None:
        # Graph's handshake: the token back as plain text within 10 seconds, nothing else looked at.
        return _answer(push_inbox.graph_validation(token))
    flask.request.max_content_length = MAX_GRAPH_BODY
    try:
        raw = flask.request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _answer(push_inbox.Answer(413, "too large"))
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return _answer(push_inbox.Answer(400, "not JSON"))
    if _too_deep(body):
        return _answer(push_inbox.Answer(400, "nested too deeply"))
    try:
        return _answer(push_inbox.graph(body))
    except Exception as exc:
        busy = _busy(exc)
        if busy is None:
            raise
        return busy
