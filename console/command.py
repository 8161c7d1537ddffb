"""``calsync``: one command for the console, the service and every admin command.

    calsync console [--as NAME]      the interactive support console   (= run_console.py)
    calsync serve [--role …] [--once] the service                       (= run_bot.py)
    calsync COMMAND …                an admin command                  (= run_console.py COMMAND …)

``run_console.py`` and ``run_bot.py`` stay; this only dispatches to them, so every command,
flag, ``--json`` field and exit code is theirs.
"""

from __future__ import annotations

import sys

USAGE = """usage: calsync [--version] [--help] COMMAND [ARGS]

  calsync console [--as NAME]     open the interactive support console
  calsync serve [OPTIONS]         run the service: scheduler, web server, Slack (calsync serve --help)
  calsync COMMAND [ARGS]          run one admin command (calsync COMMAND --help), one of:
                                  {commands}
  calsync --version               print calsync's version

Exit codes: 0 ok, 1 the action failed (reason on stderr), 2 bad usage.
"""


def _admin_commands() -> list[str]:
    import argparse

    from console import cli

    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    return []


def _usage() -> str:
    return USAGE.format(commands=", ".join(_admin_commands()))


def _console_parser():
    from console.cli_args import Parser, actor
    from core.version import VersionAction

    parser = Parser(prog="calsync console", description="Open the interactive support console.")
    parser.add_argument("--as", dest="as_user", metavar="NAME", type=actor, help="audit actions as NAME (default: the OS user)")
    parser.add_argument("--version", action=VersionAction)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from console import cli_args

    cli_args.PROG = "calsync"
    if not argv or argv[0] in ("-h", "--help", "help") and len(argv) == 1:
        print(_usage(), end="")
        return 0
    if argv[0] in ("--version", "-V"):
        from core.version import version

        print(f"calsync {version()}")
        return 0
    if argv[0] == "help":  # calsync help COMMAND
        argv = [*argv[1:], "--help"]
    import run_console

    if argv[0] == "console":
        args = _console_parser().parse_args(argv[1:])  # a command here is a usage error (exit 2)
        return run_console.main(["--as", args.as_user] if args.as_user else [])
    if argv[0] == "serve":
        import run_bot

        run_bot.PROG = "calsync serve"
        run_bot.exit_now(run_bot.main(argv[1:]))
    return run_console.main(argv)


def entry() -> None:
    """The console script (pyproject.toml ``[project.scripts]``)."""
    if sys.argv[1:2] != ["serve"]:
        import run_console

        run_console.leave_out_unused_drivers()
    sys.exit(main())
