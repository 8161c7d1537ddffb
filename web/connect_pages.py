"""The connect page a staff member reaches from `/calsync connect` (a one-off link)."""

from __future__ import annotations

import flask

from core import actions
from web.app import runtime

blueprint = flask.Blueprint("connect", __name__)


def _invalid():
    return flask.render_template(
        "message.html", title="This link does not work any more",
        message="Connect links work once, for 24 hours. Ask for a new one with /calsync connect in Slack.",
    ), 410


@blueprint.get("/connect/<token>")
def page(token: str):
    staff = actions.connect_link_staff(runtime(), token)
    if staff is None:
        return _invalid()
    link_expiry = _expiry(token)
    return flask.render_template("connect.html", staff=staff, token=token, expires=link_expiry, form={}, error=None,
                                 oauth=sorted(runtime().settings.oauth))


def _expiry(token: str):
    import hashlib

    import models as m

    link = m.ConnectLink.get_or_none(m.ConnectLink.token_hash == hashlib.sha256(token.encode()).hexdigest())
    return link.expires_at.isoformat() if link else ""


@blueprint.post("/connect/<token>")
def submit(token: str):
    rt = runtime()
    staff = actions.connect_link_staff(rt, token)
    if staff is None:
        return _invalid()
    form = flask.request.form
    provider = form.get("provider", "")
    if provider not in ("caldav", "ics"):
        return flask.render_template("connect.html", staff=staff, token=token, expires=_expiry(token), form=form,
                                     error="choose a CalDAV account or a calendar address", oauth=sorted(rt.settings.oauth)), 422
    try:
        result = actions.connect_by_link(rt, token, provider, url=form.get("url", ""), username=form.get("username", ""),
                                         password=form.get("password", ""))
    except actions.ActionError as exc:
        return flask.render_template("connect.html", staff=staff, token=token, expires=_expiry(token), form=form,
                                     error=str(exc), oauth=sorted(rt.settings.oauth)), 422
    return flask.render_template("connect_done.html", result=result)
