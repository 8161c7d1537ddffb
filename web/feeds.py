"""Private feeds (`/feeds/<token>.ics`) and one-off downloads (`/download/<token>.ics`)."""

from __future__ import annotations

import flask
from werkzeug.http import http_date

from core import actions, feeds
from web.pages import runtime

blueprint = flask.Blueprint("feeds", __name__)

NOT_FOUND = "Not found\n"


def _not_found():
    # One answer for every bad token: no hint which part was wrong.
    response = flask.Response(NOT_FOUND, status=404, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/feeds/<token>.ics", methods=["GET", "HEAD"])
@blueprint.route("/feeds/.ics", defaults={"token": ""}, methods=["GET", "HEAD"])  # an empty token: the same 404
def feed(token: str):
    staff = feeds.lookup(token)
    if staff is None:
        return _not_found()
    rt = runtime()
    validators = feeds.validators(rt, staff)
    headers = {
        "ETag": validators.etag,
        "Last-Modified": http_date(validators.last_modified),
        "Cache-Control": "private, max-age=300",
        "Referrer-Policy": "no-referrer",
    }
    request = flask.request
    # If-None-Match compares weakly (RFC 9110 13.1.2): a compressing proxy hands our ETag on as W/"…".
    if request.if_none_match and request.if_none_match.contains_weak(validators.etag.strip('"')):
        return flask.Response(status=304, headers=headers)
    if not request.if_none_match and request.if_modified_since and request.if_modified_since >= validators.last_modified:
        return flask.Response(status=304, headers=headers)
    body = feeds.render_cached(rt, staff, validators.etag)
    response = flask.Response(body, mimetype="text/calendar", headers=headers)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'inline; filename="calsync.ics"'
    return response


@blueprint.get("/download/<token>.ics")
def download(token: str):
    result = actions.download_by_link(runtime(), token)
    if result is None:
        # One page for an unknown, a used and an expired link: what happened and what to do next.
        response = flask.make_response(flask.render_template("download_gone.html"), 410)
        response.headers["Cache-Control"] = "no-store"
        return response
    response = flask.Response(result["ics"], mimetype="text/calendar")
    response.headers["Content-Disposition"] = f'attachment; filename="{result["filename"]}"'
    response.headers["Cache-Control"] = "no-store"
    return response
