#!/usr/bin/env python3
"""Calsync support console: `python run_console.py` (interactive) or `python run_console.py COMMAND` (admin CLI)."""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from console import cli

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code = cli.main(argv)
    if code is None:
        return open_console(argv)
    return code


def open_console(argv: list[str] | None = None) -> int:
    """The interactive console, acting as `--as NAME` or the OS user, on the configured database."""
    from console import cli
    from core import runtime
    from core.config import ConfigError

    args = cli.build_parser().parse_args(argv)
    try:
        rt = runtime.start()
    except ConfigError as exc:
        print(f"calsync: configuration error: {exc}", file=sys.stderr)
        return cli.EXIT_USAGE
    # Log lines written to the terminal would tear the screen: they go to a file while it runs.
    root = logging.getLogger()
    terminal_handlers = list(root.handlers)
    for handler in terminal_handlers:
        root.removeHandler(handler)
    log_file = logging.FileHandler(rt.settings.data_dir / "console.log", encoding="utf-8")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(log_file)
    try:
        from console.app import CalsyncConsole

        CalsyncConsole(rt=rt, actor=cli._actor(args)).run()
    finally:
        root.removeHandler(log_file)
        log_file.close()
        for handler in terminal_handlers:
            root.addHandler(handler)
        rt.close()
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
