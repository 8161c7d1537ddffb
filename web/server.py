"""Run the web app under waitress (a production WSGI server, no request log by default)."""

from __future__ import annotations

import logging
import re

import waitress
from waitress.server import create_server  # its own module: the stubs of the package leave it out

from web.app import create_app

# waitress names the request path in two of its own log lines ("Client
# disconnected while serving …", "Exception while serving …"); these paths
# carry relink (and later feed/OAuth) tokens, so they are cut before any handler.
TOKEN_PATH = re.compile(r"(/(?:relink|feeds|oauth|download)/)[^\s'\"]+")


class RedactTokenPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = TOKEN_PATH.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _guard_waitress_log() -> None:
    logger = logging.getLogger("waitress")
    if not any(isinstance(f, RedactTokenPaths) for f in logger.filters):
        logger.addFilter(RedactTokenPaths())


def make_server(rt, host: str | None = None, port: int | None = None, threads: int = 4, bolt_app=None):
    """A bound waitress server: call ``.run()`` (blocks, e.g. in a thread) and ``.close()``."""
    _guard_waitress_log()
    return create_server(
        create_app(rt, bolt_app),
        host=host or rt.settings.http_host,
        port=rt.settings.http_port if port is None else port,
        threads=threads,
        ident="calsync",
    )


def serve(rt, host: str | None = None, port: int | None = None, threads: int | None = None) -> None:
    """Serve until interrupted."""
    _guard_waitress_log()
    waitress.serve(
        create_app(rt),
        host=host or rt.settings.http_host,
        port=rt.settings.http_port if port is None else port,
        threads=threads or 4,
        ident="calsync",
    )
