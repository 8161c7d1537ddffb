"""The relink pages: a link from an alert opens the account, what broke, and the form that fixes it."""

from __future__ import annotations

import logging
import time

import flask

from core import actions, relink, wording
from core.actions.relinking import (
    TooManyRequests,
    link_channels,
    relink_download,
    request_words,
)
from web.pages import allow_consent_redirects, chosen_roles, link_invalid, runtime, sign_in_not_configured

log = logging.getLogger("calsync.web")

blueprint = flask.Blueprint("relink", __name__)

# /relink/request answers on a multiple of this many seconds after it began (the next one after the
# work, however long that took), so its time does not say whether the address is known.
ANSWER_SECONDS = 0.25


@blueprint.get("/relink/<token>")
def page(token: str):
    try:
        page = actions.relink_page(runtime(), token)
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    return render_form(token, page)


@blueprint.post("/relink/<token>")
def submit(token: str):
    rt = runtime()
    try:
        page = actions.relink_page(rt, token, list_calendars=False)
        if page["form"] == "oauth":
            return sign_in_not_configured(page["provider"])
        result = actions.complete_relink(rt, token, password=flask.request.form.get("password", ""), url=flask.request.form.get("url", ""))
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    except actions.ActionError as exc:
        # The new credentials were refused: nothing was saved, the link still works.
        return render_form(token, page, error=str(exc)), 422
    return _after_fix(rt, token, result, "credentials")


@blueprint.post("/relink/<token>/calendar")
def choose_calendar(token: str):
    """calendar_missing / read_only: a new primary calendar, no password."""
    rt = runtime()
    try:
        form = flask.request.form
        result = actions.relink_choose_calendar(rt, token, form.get("calendar", ""), **chosen_roles(form))
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    except actions.ActionError as exc:
        return render_form(token, actions.relink_page(rt, token), error=str(exc)), 422
    return _after_fix(rt, token, result, "calendar")


@blueprint.get("/relink/<token>/waiting.ics")
def download(token: str):
    """The appointments waiting, as an .ics snapshot; the live relink link is the key."""
    try:
        result = relink_download(runtime(), token)
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    response = flask.Response(result["ics"], mimetype="text/calendar")
    response.headers["Content-Disposition"] = f'attachment; filename="{result["filename"]}"'
    return response


@blueprint.post("/relink/<token>/test")
def test_again(token: str):
    rt = runtime()
    try:
        result = actions.relink_test(rt, token)
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    except actions.ActionError as exc:
        return render_form(token, actions.relink_page(rt, token), error=str(exc)), 422
    return _after_fix(rt, token, result, "test")


def _after_fix(rt, token: str, result: dict, fixed: str):
    log.info("relink page: connection %s is now %s", result["id"], result["status"])
    if result.get("in_progress"):
        return flask.render_template(
            "message.html",
            title="Saved: calsync is finishing the repair",
            message="What you entered is saved. Calsync is syncing this calendar right now and writes the "
            "appointments that waited as soon as that run ends; you are told when it is done. "
            "You can reload this page in a minute to see the status.",
        )
    if not result["ok"]:
        # Something is still wrong; the link was not spent, and the page says what.
        return render_form(token, actions.relink_page(rt, token), still_wrong=result, fixed=fixed)
    return flask.render_template("relink_done.html", result=_done_facts(rt, result), delivered=result["delivered"])


def _done_facts(rt, result: dict) -> dict:
    facts = dict(result)
    if "provider" not in facts or "account" not in facts:
        facts.update({k: v for k, v in actions.get_connection(rt, result["id"]).items() if k in ("provider", "account")})
    return facts


@blueprint.route("/relink/request", methods=["GET", "POST"])
def request_link():
    """Known address or not, broken connection or not: the same page, status and time (ANSWER_SECONDS)."""
    channels = link_channels(runtime())
    if flask.request.method == "GET":
        return flask.render_template("request_link.html", request=request_words(channels), channels=channels)
    started = time.monotonic()
    try:
        result = actions.request_new_link(runtime(), flask.request.form.get("email", ""), client=flask.request.remote_addr or "")
    except TooManyRequests:
        # Counted per client address, whatever address was typed: this says nothing about anyone.
        return (
            flask.render_template(
                "message.html",
                title="Too many requests",
                message="Too many requests for a new link came from your network. Try again in a minute.",
            ),
            429,
            {"Retry-After": "60"},
        )
    time.sleep(ANSWER_SECONDS - (time.monotonic() - started) % ANSWER_SECONDS)
    return flask.render_template("message.html", title=result["title"], message=result["message"])


def render_form(token: str, page: dict, error: str = "", still_wrong: dict | None = None, fixed: str = "") -> str:
    if page["form"] == "oauth":
        allow_consent_redirects(page["provider"])
    still_problem = still_todo = ""
    if still_wrong:
        # What is wrong now, in the same words as the rest of the page (core.wording).
        still_problem = wording.problem(
            still_wrong["status"],
            page["provider"],
            server_url=page["server"],
            calendar=page["calendar"],
            failing=bool(still_wrong.get("failing")),
        )
        still_todo = wording.staff_advice(still_wrong["status"], page["provider"], page["server"])
    return flask.render_template(
        "relink.html",
        token=token,
        page=page,
        error=error,
        still_wrong=still_wrong,
        still_problem=still_problem,
        still_todo=still_todo,
        fixed=fixed,
        preset=wording.preset_for(page["server"]) if page["form"] == "password" else None,
    )
