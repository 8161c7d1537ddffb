"""The Flask app: settings → app, security headers on every answer, plain error pages."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sys
import traceback
from urllib.parse import urlsplit

import flask
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

import models as m
from core import notices, wording
from web.pages import RETRY_AFTER, RUNTIME, http_error

log = logging.getLogger("calsync.web")


# Every form post needs its token; JSON APIs with their own auth call csrf.exempt(blueprint).
csrf = CSRFProtect()


class CalsyncFlask(flask.Flask):
    def log_exception(self, exc_info) -> None:
        # Flask's own line names request.path, and a relink path carries a live
        # token; the endpoint says which page failed without it.
        text = "".join(traceback.format_exception(*exc_info))
        token = (flask.request.view_args or {}).get("token") if flask.has_request_context() else None
        if token:
            text = text.replace(token, "<token>")
        log.error("unhandled error in %s %s\n%s", flask.request.method, flask.request.endpoint, text)


def session_secret(rt) -> bytes:
    """The Flask session key, derived from the vault key so every web process agrees on it."""
    material = rt.settings.secret_key.reveal() if rt.settings.secret_key else rt.settings.key_file.read_text()
    return hashlib.sha256(b"calsync-web-session:" + material.strip().encode()).digest()


def create_app(rt, bolt_app=None) -> flask.Flask:
    """The web app; ``bolt_app`` (bot.app.create_app) adds ``POST /slack/events``."""
    app = CalsyncFlask(__name__)
    https = urlsplit(rt.settings.base_url).scheme == "https"
    app.config.update(
        SECRET_KEY=session_secret(rt),
        SESSION_COOKIE_NAME="calsync_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        MAX_CONTENT_LENGTH=64 * 1024,
        # Pages send "Referrer-Policy: no-referrer" (the URL holds the token), so
        # the browser sends no Referer and Flask-WTF's HTTPS referrer check would
        # refuse every form; the session-bound token and SameSite=Lax remain.
        WTF_CSRF_SSL_STRICT=False,
    )
    app.extensions[RUNTIME] = rt
    csrf.init_app(app)

    from web import api, connect_pages, feeds, oauth, push, relink_pages

    app.register_blueprint(relink_pages.blueprint)
    app.register_blueprint(oauth.blueprint)
    app.register_blueprint(connect_pages.blueprint)
    app.register_blueprint(feeds.blueprint)
    app.register_blueprint(api.blueprint)
    csrf.exempt(api.blueprint)  # bearer keys, not cookies: no cross-site forgery to stop
    app.register_blueprint(push.blueprint)
    csrf.exempt(push.blueprint)  # provider notifications prove themselves by their channel's secret
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/metrics", "metrics", prometheus_metrics)
    if bolt_app is not None:
        from slack_bolt.adapter.flask import SlackRequestHandler

        handler = SlackRequestHandler(bolt_app)

        def slack_events():
            # Bolt checks Slack's signature and timestamp on every request.
            return handler.handle(flask.request)

        app.add_url_rule("/slack/events", "slack_events", slack_events, methods=["POST"])
        csrf.exempt(slack_events)

    app.before_request(_open_database)
    app.teardown_request(_close_database)
    app.after_request(_security_headers(https))
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, _unexpected)
    app.add_template_filter(when)
    app.add_template_filter(status_label)
    app.add_template_filter(notices.provider_name, "provider_name")
    app.add_template_filter(capfirst)
    app.add_template_filter(sentence)
    app.add_template_filter(plural)
    app.add_template_filter(local)
    app.add_template_filter(badge)
    app.add_template_filter(heading)
    app.add_template_filter(wording.webcal, "webcal")
    app.add_template_filter(wording.zone_name, "zone_name")
    app.jinja_env.globals["subscribe_help"] = wording.SUBSCRIBE_HELP
    return app


def healthz():
    from core import metrics

    try:
        m.db.execute_sql("select 1")
        version = m.current_version(m.db)
        scheduler = metrics.scheduler_state()
        backlog = metrics.backlog()
    except Exception as exc:  # noqa: BLE001 — the answer is the report; the class name says enough
        log.warning("healthz: database check failed: %s", type(exc).__name__)
        return flask.jsonify(status="error", database=f"error: {type(exc).__name__}"), 503
    return flask.jsonify(status="ok", database="ok", schema_version=version, scheduler=scheduler, outbox_backlog=backlog)


def prometheus_metrics():
    from core import metrics

    return flask.Response(metrics.render(), mimetype="text/plain; version=0.0.4")


# -- per request ---------------------------------------------------------------------------


def _open_database() -> None:
    # waitress serves from a fixed pool of threads and peewee keeps one connection per thread:
    # each thread opens its connection once and keeps it for the next request (opening and
    # closing SQLite per request was ~1 ms of every feed refresh).
    if m.db.is_closed():
        m.db.connect(reuse_if_open=True)


def _close_database(exc) -> None:
    # Runs after the answer is made: a failure here can only be logged, never change the answer.
    try:
        if not m.db.is_closed() and m.db.in_transaction():
            m.db.rollback()  # nothing half-written survives a request that ended inside a transaction
    except Exception as error:  # noqa: BLE001 — the answer has been made; keep the thread serving
        log.warning("ending the transaction after %s failed: %s", flask.request.endpoint, type(error).__name__)
        try:
            m.db.close()  # a connection in an unknown state is not kept for the next request
        except Exception:  # noqa: BLE001 — already failed once; nothing more to do than log it
            log.debug("closing the connection after %s failed too", flask.request.endpoint)


def _security_headers(https: bool):
    def add(response: flask.Response) -> flask.Response:
        form_action = " ".join(["'self'", *flask.g.get("form_action_also", ())])
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if https:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if flask.request.endpoint != "static" and "Cache-Control" not in response.headers:
            # Relink pages hold a live token and the state of someone's account;
            # a view that knows better (a feed) sets its own.
            response.headers["Cache-Control"] = "no-store"
        return response

    return add


# -- error pages ----------------------------------------------------------------------------


def _csrf_failed(exc: CSRFError):
    return flask.render_template(
        "message.html",
        title="Please reload the page",
        message="This form expired or was not sent from this page. Reload the page and try again.",
    ), 400


def _unexpected(exc: Exception):
    if flask.request.path.startswith("/api/v1/"):
        # Raised before a route was chosen (opening the database): the host still gets JSON.
        from web.api import unexpected as api_unexpected

        return api_unexpected(exc)
    if isinstance(exc, HTTPException):
        return http_error(exc)
    if m.is_busy(exc):
        log.warning("%s %s: %s", flask.request.method, flask.request.endpoint, m.BUSY_MESSAGE)
        return (
            flask.render_template(
                "message.html",
                title="Busy, please try again",
                message="Calsync is busy with other work right now; nothing was changed. Please try again in a moment.",
            ),
            503,
            {"Retry-After": str(RETRY_AFTER)},
        )
    # Flask calls this handler while it handles ``exc``: sys.exc_info() is (type(exc), exc, its traceback).
    flask.current_app.log_exception(sys.exc_info())
    return flask.render_template(
        "message.html",
        title="Something went wrong",
        message="Something went wrong on our side; nothing was changed. Please try again in a few minutes.",
    ), 500


# -- template filters -------------------------------------------------------------------------


def when(value: str | None) -> str:
    """An ISO time from core as people read it."""
    if not value:
        return "unknown"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(dt.UTC).strftime("%d %B %Y, %H:%M UTC").lstrip("0")


def status_label(status: str) -> str:
    return (status or "unknown").replace("_", " ").capitalize()


def local(value: str | None, zone: str | None, label: bool = True) -> str:
    """A time from core in the staff member's zone, labelled: '2026-12-02 09:00 CET (Europe/Berlin)'."""
    if not value:
        return "unknown"
    return wording.local_time(value.replace("Z", "+00:00") if isinstance(value, str) else value, zone, label=label)


# The status as the pages' badge says it, and the page heading (and <title>) that goes with it:
# the two use the same words ("Reconnect your calendar" / "Needs reconnecting").
BADGES = {"relink_required": "Needs reconnecting"}
HEADINGS = {
    "relink_required": "Reconnect your calendar",
    "calendar_missing": "Your calendar is missing",
    "read_only": "Your calendar is read only",
    "unreachable": "Your calendar is unreachable",
    "pending": "Your calendar is pending its first sync",
    "active": "Your calendar is active",
    "stopped": "Your calendar sync is stopped",
}


def badge(status: str) -> str:
    return BADGES.get(status) or status_label(status)


def heading(status: str) -> str:
    return HEADINGS.get(status, "Your calendar connection")


def capfirst(text: str) -> str:
    text = str(text or "")
    return text[:1].upper() + text[1:]


def sentence(text: str) -> str:
    """Core's plain-words reasons are clauses ("the server rejected …"): start and end them as a sentence."""
    text = capfirst(str(text or "").strip())
    return text if text.endswith((".", "!", "?")) else text + "."


def plural(count: int, singular: str, plural_form: str = "") -> str:
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"
