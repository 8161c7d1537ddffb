"""The connect page a staff member reaches from `/calsync connect` (a one-off link)."""

from __future__ import annotations

import flask

from core import actions
from core.actions.links import ConnectLinkSpent
from web.app import runtime
from web.oauth import allow_consent_redirects

blueprint = flask.Blueprint("connect", __name__)


INVALID = "Connect links work once, for 24 hours. Ask for a new one with /calsync connect in Slack."
# A form sent twice (or from two tabs) at once: one of them connected, this one did nothing.
SPENT = ("This link was already used. If you just connected a calendar with it, it is connected: "
         "/calsync status in Slack shows your connections. Ask for a new link with /calsync connect to add another.")


def _invalid(message: str = INVALID):
    return flask.render_template("message.html", title="This link does not work any more", message=message), 410


@blueprint.get("/connect/<token>")
def page(token: str):
    info = actions.connect_link_info(runtime(), token)
    if info is None:
        return _invalid()
    allow_consent_redirects(*runtime().settings.oauth)
    return flask.render_template("connect.html", staff=info["staff"], token=token, expires=info["expires_at"], form={},
                                 error=None, oauth=sorted(runtime().settings.oauth))


def _expiry(token: str) -> str:
    info = actions.connect_link_info(runtime(), token)
    return info["expires_at"] if info else ""


@blueprint.post("/connect/<token>")
def submit(token: str):
    rt = runtime()
    staff = actions.connect_link_staff(rt, token)
    if staff is None:
        return _invalid()
    form = flask.request.form
    provider = form.get("provider", "")
    if provider not in ("caldav", "ics"):
        allow_consent_redirects(*rt.settings.oauth)
        return flask.render_template("connect.html", staff=staff, token=token, expires=_expiry(token), form=form,
                                     error="choose a CalDAV account or a calendar address", oauth=sorted(rt.settings.oauth)), 422
    try:
        result = actions.connect_by_link(rt, token, provider, url=form.get("url", ""), username=form.get("username", ""),
                                         password=form.get("password", ""))
    except ConnectLinkSpent:
        return _invalid(SPENT)
    except actions.ActionError as exc:
        allow_consent_redirects(*rt.settings.oauth)
        return flask.render_template("connect.html", staff=staff, token=token, expires=_expiry(token), form=form,
                                     error=str(exc), oauth=sorted(rt.settings.oauth)), 422
    return flask.render_template("connect_done.html", result=result)
