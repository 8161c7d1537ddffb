"""The connect page a staff member reaches from `/calsync connect` (a one-off link).

The page offers the CalDAV services people name (core.wording.CALDAV_PRESETS: the
server address filled in, which password to use), a calendar feed address, and the
sign-ins that are set up. An account with several calendars calsync may write to gets
one more step: the person chooses which calendar the appointments go to, before
calsync writes anything.
"""

from __future__ import annotations

import flask

from core import actions, wording
from core.actions.links import (
    CHOICE_MINUTES,
    ConnectLinkSpent,
    connect_link_choose_calendar,
)
from web.pages import allow_consent_redirects, chosen_roles, runtime

blueprint = flask.Blueprint("connect", __name__)


INVALID = "Connect links work once, for 24 hours. Ask for a new one with /calsync connect in Slack."
# A form sent twice (or from two tabs) at once: one of them connected, this one did nothing.
SPENT = (
    "This link was already used. If you just connected a calendar with it, it is connected: "
    "/calsync status in Slack shows your connections. Ask for a new link with /calsync connect to add another."
)
# The connection this browser just made with a connect link, so only it can choose its calendar.
CHOICE = "connect_choice"
PRESETS = {p["key"]: p for p in wording.CALDAV_PRESETS}


def _invalid(message: str = INVALID):
    return flask.render_template("message.html", title="This link does not work any more", message=message), 410


def _preset(form) -> dict | None:
    """The provider preset chosen (a link on the page, kept in the form), else the one the address names."""
    chosen = PRESETS.get(form.get("preset", ""))
    if chosen is None and form.get("provider") == "caldav":
        chosen = wording.preset_for(form.get("url", ""))
    return chosen


def _feed_url(email: str) -> str:
    try:
        return actions.feed_url(runtime(), email)["url"]
    except actions.ActionError:
        return ""


def _render_form(token: str, staff, form, error: str | None = None):
    rt = runtime()
    allow_consent_redirects(*rt.settings.oauth)
    info = actions.connect_link_info(rt, token)
    preset = _preset(form)
    typed = form.get("url", "") if form.get("provider") == "caldav" else ""
    value, placeholder = typed, ""
    if not typed and preset and preset["server_url"]:
        if "YOUR-" in preset["server_url"]:
            placeholder = preset["server_url"]  # a pattern to complete, not an address
        else:
            value = preset["server_url"]
    return flask.render_template(
        "connect.html",
        staff=staff,
        token=token,
        expires=info["expires_at"] if info else "",
        form=form,
        error=error,
        oauth=sorted(rt.settings.oauth),
        presets=wording.CALDAV_PRESETS,
        preset=preset,
        server_value=value,
        server_placeholder=placeholder,
        feed_url=_feed_url(staff.email),
    )


@blueprint.get("/connect/<token>")
def page(token: str):
    info = actions.connect_link_info(runtime(), token)
    if info is None:
        return _invalid()
    return _render_form(token, info["staff"], flask.request.args)


@blueprint.post("/connect/<token>")
def submit(token: str):
    rt = runtime()
    staff = actions.connect_link_staff(rt, token)
    if staff is None:
        return _invalid()
    form = flask.request.form
    provider = form.get("provider", "")
    if provider not in ("caldav", "ics"):
        return _render_form(token, staff, form, "choose a CalDAV account or a calendar address"), 422
    try:
        result = actions.connect_by_link(
            rt, token, provider, url=form.get("url", ""), username=form.get("username", ""), password=form.get("password", "")
        )
    except ConnectLinkSpent:
        return _invalid(SPENT)
    except actions.ActionError as exc:
        return _render_form(token, staff, form, str(exc)), 422
    if result.get("choose"):
        flask.session[CHOICE] = result["id"]
        return _render_choice(token, result)
    return _render_done(result)


def _render_choice(token: str, result: dict, error: str = ""):
    calendars = [c for c in result["calendars"] if c.get("choosable", c["writable"])]
    return flask.render_template(
        "connect_choose.html",
        token=token,
        result=result,
        calendars=calendars,
        roles=result["calendars"],
        error=error,
        choice_minutes=CHOICE_MINUTES,
    )


def _render_done(result: dict):
    return flask.render_template("connect_done.html", result=result, feed_url=_feed_url(result["staff"]))


@blueprint.post("/connect/<token>/calendar")
def choose_calendar(token: str):
    """The calendar the appointments of the connection just made go to (then the first sync)."""
    rt = runtime()
    form = flask.request.form
    conn_id = form.get("connection", "")
    if str(flask.session.get(CHOICE, "")) != conn_id:
        return _invalid(SPENT)
    try:
        result = connect_link_choose_calendar(rt, token, conn_id, form.get("calendar", ""), **chosen_roles(form))
    except ConnectLinkSpent:
        return _invalid(SPENT)
    except actions.ActionError as exc:
        return _render_choice(token, actions.get_connection(rt, conn_id), str(exc)), 422
    flask.session.pop(CHOICE, None)
    return _render_done({**result, "warnings": []})
