"""What every page of the web app shares: the runtime, plain error pages, sign-in redirects.

The blueprints and the app import from here (never from each other or from web.app), so the web
package has no import circle.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import flask
from werkzeug.exceptions import HTTPException

from core import notices, relink
from core.actions.relinking import link_channels, request_words

RUNTIME = "calsync.runtime"
RETRY_AFTER = 5  # seconds, when the database is busy: a writer holds the SQLite lock for well under this
# 404 when nobody ever issued the link, 410 when it existed and no longer works.
INVALID_STATUS = {"unknown": 404, "expired": 410, "used": 410, "replaced": 410}


def runtime():
    """The core Runtime this app was built with."""
    return flask.current_app.extensions[RUNTIME]


MAX_ROLE_BOXES = 200  # more ticked boxes than any account has calendars is not a form of ours


def chosen_roles(form) -> dict:
    """The ``busy`` and ``write`` boxes of a calendar form (templates/calendar_choices.html), for
    core.actions.roles.choose_calendars: None for each when the form did not show them."""
    if form.get("roles") != "1":
        return {"busy": None, "write": None}
    busy, write = form.getlist("busy")[:MAX_ROLE_BOXES], form.getlist("write")[:MAX_ROLE_BOXES]
    return {"busy": [v[:20] for v in busy], "write": [v[:20] for v in write]}


def http_error(exc: HTTPException):
    if exc.code == 404:
        message = "There is no page at this address. If you followed a link, it may have been cut off."
    elif exc.code == 405:
        message = "This page cannot be used that way. Go back and use the form on the page."
    elif exc.code == 413:
        message = "What was sent is too large."
    else:
        message = exc.description or "The request could not be handled."
    return flask.render_template("message.html", title=exc.name, message=message), exc.code


def allow_consent_redirects(*providers: str) -> None:
    """This page's sign-in forms may lead to the providers' consent pages.

    Chromium checks a form post's redirect against the form-action of the page
    that holds the form, so the page itself must name the consent origin.
    """
    origins = []
    for provider in providers:
        client = runtime().settings.oauth.get(provider)
        if client is not None:
            parts = urlsplit(client.auth_url)
            origins.append(f"{parts.scheme}://{parts.netloc}")
    flask.g.form_action_also = tuple(dict.fromkeys(origins))


def sign_in_not_configured(provider: str):
    name = notices.provider_name(provider)
    return flask.render_template(
        "message.html",
        title="Sign-in is not set up",
        message=f"Sign-in with {name} is not configured in this installation yet, so this account cannot be "
        "reconnected from this page. Nothing was changed. Please tell your support team; "
        "your link stays valid until it expires.",
    ), 501


def link_invalid(exc: relink.LinkInvalid):
    channels = link_channels(runtime())
    return flask.render_template(
        "link_invalid.html",
        why=exc.why,
        why_text=relink.WHY_TEXT.get(exc.why, relink.WHY_TEXT["unknown"]),
        request=request_words(channels),
        channels=channels,
    ), INVALID_STATUS.get(exc.why, 404)
