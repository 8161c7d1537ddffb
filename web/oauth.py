"""The seam for OAuth providers (Google, Microsoft): consent start and callback.

``OAUTH_START`` maps a provider name to ``start(rt, token) -> consent URL``,
where ``token`` is the relink token of the page the user came from (the
callable looks it up, keeps state + PKCE, and returns the provider's URL).
While it is empty, the pages say plainly that this sign-in is not set up.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

import flask

from core import actions, notices, relink
from web.app import runtime

OAUTH_START: dict[str, Callable[[object, str], str]] = {}

blueprint = flask.Blueprint("oauth", __name__)


@blueprint.post("/relink/<token>/oauth")
def start(token: str):
    from web.relink_pages import link_invalid

    rt = runtime()
    try:
        page = actions.relink_page(rt, token)
    except relink.LinkInvalid as exc:
        return link_invalid(exc)
    begin = OAUTH_START.get(page["provider"])
    if begin is None:
        return sign_in_not_configured(page["provider"])
    consent_url = begin(rt, token)
    # Chromium applies form-action to the redirect that follows a form post.
    parts = urlsplit(consent_url)
    flask.g.form_action_also = (f"{parts.scheme}://{parts.netloc}",)
    return flask.redirect(consent_url, code=303)


@blueprint.get("/oauth/<provider>/callback")
def callback(provider: str):
    return flask.render_template(
        "message.html",
        title="Sign-in is not set up",
        message=f"Sign-in with {notices.provider_name(provider)} is not set up in this installation, "
                "so nothing was changed. Please tell your support team.",
    ), 400


def sign_in_not_configured(provider: str):
    name = notices.provider_name(provider)
    return flask.render_template(
        "message.html",
        title="Sign-in is not set up",
        message=f"Sign-in with {name} is not configured in this installation yet, so this account cannot be "
                "reconnected from this page. Nothing was changed. Please tell your support team; "
                "your link stays valid until it expires.",
    ), 501
