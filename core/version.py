"""Calsync's version, as installed (``pyproject.toml``'s ``[project] version``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def version() -> str:
    from importlib import metadata  # here, not at import: every CLI start-up would pay for it

    try:
        return metadata.version("calsync")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "unknown"


class VersionAction(argparse.Action):
    """``--version``: prints ``PROG VERSION`` and exits 0 (the version is looked up only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(
            option_strings=option_strings, dest=dest, default=default, nargs=0, help=help or "print calsync's version and exit"
        )

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(f"{parser.prog} {version()}\n", sys.stdout)
        parser.exit()
