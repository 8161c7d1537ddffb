"""The seam for OAuth providers (Google, Microsoft): consent start and callback.

``OAUTH_START`` maps a provider name to ``start(rt, token) -> consent URL``,
where ``token`` is the relink token of the page the user came from (the
callable looks it up, keeps state + PKCE, and returns the provider's URL).
While it is empty, the pages say plainly that this sign-in is not set up.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import flask

from core import actions, notices, relink
from core.actions.links import CHOICE_MINUTES
from core.actions.oauth import ChoiceRefused, oauth_choose_calendar
from web.pages import chosen_roles, link_invalid, runtime, sign_in_not_configured

# The connection this browser just made by signing in, and the consent's state (already spent,
# and in this browser's address bar anyway): only this browser may choose its calendar
# (core.actions.oauth.oauth_choose_calendar checks the state made that connection).
CHOICE = "oauth_choice"


def _relink_start(rt, token: str) -> str:
    return actions.oauth_relink_url(rt, token)


OAUTH_START: dict[str, Callable[[object, str], str]] = {"google": _relink_start, "microsoft": _relink_start}

blueprint = flask.Blueprint("oauth", __name__)


@blueprint.post("/relink/<token>/oauth")
def start(token: str):
    rt = runtime()
    try:
        page = actions.relink_page(rt, token)
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    begin = OAUTH_START.get(page["provider"])
    if begin is None:
        return sign_in_not_configured(page["provider"])
    try:
        consent_url = begin(rt, token)
    except actions.ActionError:
        return sign_in_not_configured(page["provider"])
    # Chromium applies form-action to the redirect that follows a form post.
    parts = urlsplit(consent_url)
    flask.g.form_action_also = (f"{parts.scheme}://{parts.netloc}",)
    return flask.redirect(consent_url, code=303)


@blueprint.get("/oauth/<provider>/callback")
def callback(provider: str):
    if provider not in OAUTH_START or provider not in runtime().settings.oauth:
        return flask.render_template(
            "message.html",
            title="Sign-in is not set up",
            message=f"Sign-in with {notices.provider_name(provider)} is not set up in this installation, so nothing was changed.",
        ), 400
    args = flask.request.args
    try:
        result = actions.oauth_callback(runtime(), provider, args.get("code", ""), args.get("state", ""), args.get("error", ""))
    except actions.ActionError as exc:
        return flask.render_template(
            "message.html", title="Sign-in did not work", message=f"{str(exc)[:1].upper()}{str(exc)[1:]}. Nothing was changed."
        ), 400
    if result["purpose"] == "relink":
        if result["status"] != "active":
            said = result.get("problem") or result.get("reason") or result["status"]
            todo = result.get("todo") or ""
            return flask.render_template(
                "message.html", title="Signed in, but not working yet", message=f"{said[:1].upper()}{said[1:]}. {todo}".strip()
            ), 200
        return flask.render_template("relink_done.html", result=result, delivered=result["delivered"])
    if result.get("choose"):
        flask.session[CHOICE] = {"connection": result["id"], "provider": provider, "state": args.get("state", "")}
        return _render_choice(provider, result)
    return _render_done(result)


def _render_done(result: dict):
    try:
        feed = actions.feed_url(runtime(), result["staff"])["url"]
    except (actions.ActionError, KeyError):
        feed = ""
    return flask.render_template("connect_done.html", result=result, feed_url=feed)


def _render_choice(provider: str, result: dict, error: str = ""):
    calendars = [c for c in result["calendars"] if c.get("choosable", c["writable"])]
    return flask.render_template(
        "connect_choose.html",
        result=result,
        calendars=calendars,
        roles=result["calendars"],
        error=error,
        choice_minutes=CHOICE_MINUTES,
        action=flask.url_for("oauth.choose_calendar", provider=provider),
    )


@blueprint.post("/oauth/<provider>/calendar")
def choose_calendar(provider: str):
    """The calendar the appointments of the connection this browser just made go to (then the first sync)."""
    rt = runtime()
    form = flask.request.form
    conn_id = form.get("connection", "")
    kept = flask.session.get(CHOICE)
    if not isinstance(kept, dict) or str(kept.get("connection", "")) != conn_id or kept.get("provider") != provider:
        return _choice_refused()
    try:
        result = oauth_choose_calendar(rt, provider, str(kept.get("state", "")), conn_id, form.get("calendar", ""), **chosen_roles(form))
    except ChoiceRefused:
        flask.session.pop(CHOICE, None)
        return _choice_refused()
    except actions.ActionError as exc:
        return _render_choice(provider, actions.get_connection(rt, conn_id), str(exc)), 422
    flask.session.pop(CHOICE, None)
    return _render_done(result)


@blueprint.post("/connect/<token>/oauth/<provider>")
def connect_start(token: str, provider: str):
    rt = runtime()
    # Spent before anything starts: of several sign-ins started at once, one goes on to consent.
    staff = actions.spend_connect_link(rt, token)
    if staff is None:
        return flask.render_template(
            "message.html",
            title="This link does not work any more",
            message="Connect links work once, for 24 hours. Ask for a new one with /calsync connect.",
        ), 410
    try:
        consent_url = actions.oauth_connect_url(rt, staff.email, provider, actor=f"connect-link:{staff.email}")["url"]
    except actions.ActionError as exc:
        actions.give_back_connect_link(rt, token)  # nothing was started: the link works again
        return flask.render_template("message.html", title="Sign-in is not set up", message=str(exc)), 501
    parts = urlsplit(consent_url)
    flask.g.form_action_also = (f"{parts.scheme}://{parts.netloc}",)
    return flask.redirect(consent_url, code=303)


def _choice_refused():
    return flask.render_template(
        "message.html",
        title="This page cannot choose a calendar",
        message="Only the browser that signed in can choose the calendar of the new connection, for a day. "
        "Nothing was changed. /calsync status in Slack shows your connections; /calsync primary "
        "chooses the calendar your appointments go to.",
    ), 410
