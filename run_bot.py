#!/usr/bin/env python3
"""The Calsync service: scheduler + web server (relink pages, /healthz) in one process.

`python run_bot.py --once` runs one pass of all due work and exits;
`--role scheduler|web` runs one part, for scaling out on PostgreSQL.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from core.version import VersionAction

log = logging.getLogger("calsync.service")


PROG = "run_bot.py"  # "calsync serve" when run as the calsync command (console.command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the calsync service: the scheduler (syncs every CALSYNC_SYNC_INTERVAL seconds, a health "
        "sweep every CALSYNC_SWEEP_INTERVAL, incident reminders, the notification outbox) and the web "
        "server (relink pages, /healthz) on CALSYNC_HTTP_HOST:CALSYNC_HTTP_PORT.",
        epilog="Exit codes: 0 ok, 1 a pass failed internally, 2 bad usage or configuration.",
    )
    parser.add_argument("--once", action="store_true", help="one pass of all due work (syncs, sweep, incidents, outbox), then exit")
    parser.add_argument(
        "--role",
        choices=["all", "scheduler", "bot", "web"],
        default="all",
        help="the part to run: scheduler (syncs, sweep, incidents, outbox), bot (Slack in Socket "
        "Mode), web (pages, feeds, host API, Slack over HTTP at /slack/events); default all",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least important log lines shown (default INFO)",
    )
    parser.add_argument("--version", action=VersionAction)
    return parser


def run_pass(rt) -> int:
    from core import scheduler

    result = scheduler.run_once(rt)
    reports = result["syncs"]
    internal = [r for r in reports if r["error"].startswith("internal error")]
    outcomes = ", ".join(f"{o} {sum(r['outcome'] == o for r in reports)}" for o in ("ok", "transient", "failed"))
    print(
        f"One pass: {len(reports)} due connection(s) synced ({outcomes}); "
        f"sweep checked {result['sweep']['checked']}; "
        f"{result['incidents']['reminders']} reminder(s), {result['incidents']['escalations']} escalation(s); "
        f"{result['outbox']['sent']} notification(s) delivered, {result['outbox']['failed']} to retry."
    )
    return 1 if internal else 0


def announce(rt) -> None:
    s = rt.settings
    if not s.slack_bot_token:
        log.warning("Slack is not configured (SLACK_BOT_TOKEN): alerts go to the log and the database only")
    elif not (s.slack_signing_secret or s.slack_app_token):
        log.warning(
            "Slack needs SLACK_SIGNING_SECRET (HTTP at /slack/events) or SLACK_APP_TOKEN (Socket Mode): "
            "alerts go to the log and the database only"
        )
    if not s.smtp_url:
        log.info("e-mail is not configured (CALSYNC_SMTP_URL): relink links are not mailed")
    from core import push

    (log.warning if push.why_off(s) else log.info)("%s", push.status_line(s))


def main(argv: list[str] | None = None) -> int:
    global abandoned
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core import runtime
    from core.config import ConfigError

    try:
        rt = runtime.start()
    except ConfigError as exc:
        print(f"calsync: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.once:
            from bot.app import create_app as create_bolt_app
            from bot.app import install_sender

            bolt = create_bolt_app(rt)
            if bolt is not None:
                install_sender(rt, bolt)
            return run_pass(rt)
        announce(rt)
        from bot.app import create_app as create_bolt_app
        from bot.app import install_sender, run_socket_mode

        bolt = create_bolt_app(rt)
        if bolt is not None:
            install_sender(rt, bolt)  # the scheduler's outbox delivers Slack alerts
        stop = threading.Event()
        web_server = socket_mode = None
        if bolt is not None and rt.settings.slack_app_token and args.role in ("all", "bot"):
            socket_mode = run_socket_mode(rt, bolt)
        if args.role in ("all", "web"):
            from web.server import make_server

            web_server = make_server(rt, rt.settings.http_host, rt.settings.http_port, bolt_app=bolt)
            threading.Thread(target=web_server.run, name="web", daemon=True).start()
            log.info(
                "web server listening on http://%s:%s (public URL %s)", rt.settings.http_host, rt.settings.http_port, rt.settings.base_url
            )

        def shutdown(*_):
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, shutdown)
        if args.role in ("all", "scheduler"):
            from core import scheduler

            try:
                lock = scheduler.single_scheduler_lock(rt)  # noqa: F841 (held for the process's life)
            except scheduler.SchedulerLocked as exc:
                print(f"calsync: {exc}", file=sys.stderr)
                if web_server is not None:
                    web_server.close()
                return 2
            abandoned = scheduler.run_forever(rt, stop)
        else:
            stop.wait()
        if web_server is not None:
            web_server.close()
        if socket_mode is not None:
            socket_mode.close()
        log.info("calsync service stopped")
        return 0
    finally:
        rt.close()


def exit_now(code: int) -> None:
    """Exit, also when a worker is stuck in a provider call or a parse: its lease expires by itself,
    and waiting for it would break the promise to stop within 30 seconds of SIGTERM."""
    if abandoned:
        log.warning("%d worker(s) were still busy at shutdown and are abandoned", abandoned)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


abandoned = 0  # set by main(): scheduler workers still busy when it stopped


if __name__ == "__main__":
    exit_now(main())
