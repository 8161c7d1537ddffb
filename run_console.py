#!/usr/bin/env python3
"""Calsync support console: `python run_console.py` (interactive) or `python run_console.py COMMAND` (admin CLI)."""

from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def own_lines(record: logging.LogRecord) -> bool:
    """Only calsync's own log lines reach the terminal: a library's (urllib3's "Retrying (Retry(total=0…))"
    before a request that calsync then reports in its own words) would say the same thing twice, raw."""
    return record.name == "calsync" or record.name.startswith("calsync.")


class TerminalFormatter(logging.Formatter):
    """Log lines quote provider text (errors, names): on a terminal, every line is made safe first."""

    def format(self, record: logging.LogRecord) -> str:
        from console.tables import shown_lines

        return shown_lines(super().format(record))


def leave_out_unused_drivers() -> None:
    """A command on SQLite does not load psycopg2.

    peewee imports psycopg2 as it is itself imported, and psycopg2 loads the libpq, OpenSSL,
    Kerberos and LDAP libraries its wheel bundles: ~30 ms of a ~300 ms `sync`. The database is
    fixed for the life of a command (the settings, read here as the command will read them), so
    on SQLite psycopg2 is marked absent before peewee loads: None in ``sys.modules`` makes
    ``import psycopg2`` fail, which peewee takes as "no PostgreSQL driver". Only for a command's
    own process (called from ``__main__`` and ``calsync``), never for a process that imported
    peewee already or may open another database later (the tests, the service).
    """
    if "peewee" in sys.modules or "psycopg2" in sys.modules:
        return
    from core.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError:
        return  # the command itself says what is wrong
    if settings.database_url.startswith("sqlite:"):
        sys.modules["psycopg2"] = None  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    from console import cli

    for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding lacks is shown, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalFormatter(LOG_FORMAT))
    handler.addFilter(own_lines)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.captureWarnings(True)  # Python warnings (a library's deprecations) become "py.warnings" records: filtered too
    code = cli.main(argv)
    if code is None:
        return open_console(argv)
    return code


def open_console(argv: list[str] | None = None) -> int:
    """The interactive console, acting as `--as NAME` or the OS user, on the configured database."""
    from console import cli
    from core import runtime

    args = cli.build_parser().parse_args(argv)
    try:
        rt = runtime.start()
    except cli.ANSWERED as exc:
        return cli.failed(exc)
    # Log lines written to the terminal would tear the screen: they go to a file while it runs.
    root = logging.getLogger()
    terminal_handlers = list(root.handlers)
    for handler in terminal_handlers:
        root.removeHandler(handler)
    log_path = rt.settings.data_dir / "console.log"
    os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # new logs: only for us
    log_file = logging.FileHandler(log_path, encoding="utf-8")
    log_file.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(log_file)
    try:
        from console.app import CalsyncConsole

        CalsyncConsole(rt=rt, actor=cli._actor(args), freeze_startup=True).run()
    finally:
        root.removeHandler(log_file)
        log_file.close()
        for handler in terminal_handlers:
            root.addHandler(handler)
        rt.close()
    return cli.EXIT_OK


if __name__ == "__main__":
    leave_out_unused_drivers()
    sys.exit(main())
