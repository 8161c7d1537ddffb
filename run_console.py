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
        cli.build_parser().print_help(sys.stderr)
        print(
            "\ncalsync: the interactive console is not in this release yet; use the commands above.",
            file=sys.stderr,
        )
        return cli.EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
