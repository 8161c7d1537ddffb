#!/usr/bin/env python3
"""The Calsync service: the scheduler that syncs every connection periodically.

`python run_bot.py --once` runs one pass of all due work and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

log = logging.getLogger("calsync.service")

TICK_SECONDS = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bot.py",
        description="Run the calsync service: the scheduler that syncs every connection "
                    "(every CALSYNC_SYNC_INTERVAL seconds, the first sync as soon as a connection is made).",
        epilog="Exit codes: 0 ok, 1 a pass failed internally, 2 bad usage or configuration.",
    )
    parser.add_argument("--once", action="store_true", help="one pass of all due work, then exit")
    parser.add_argument(
        "--role", choices=["scheduler"], default="scheduler",
        help="the part to run (this release has the scheduler; the Slack bot and web server come with their issues)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def run_pass(rt, once: bool = False) -> int:
    from core import actions

    reports = actions.sync_due(rt)
    failed = [r for r in reports if r["outcome"] == "failed" and r["error"].startswith("internal error")]
    log.info("pass done: %d connection(s) synced, %d with internal errors", len(reports), len(failed))
    if once:
        outcomes = ", ".join(f"{o} {sum(r['outcome'] == o for r in reports)}" for o in ("ok", "transient", "failed"))
        print(f"One pass: {len(reports)} due connection(s) synced ({outcomes}).")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
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
            return run_pass(rt, once=True)
        import schedule

        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        scheduler = schedule.Scheduler()
        scheduler.every(TICK_SECONDS).seconds.do(run_pass, rt)
        log.info("scheduler started: sync interval %ss, %d worker(s)", rt.settings.sync_interval, rt.settings.workers)
        run_pass(rt)
        while not stop.is_set():
            scheduler.run_pending()
            stop.wait(1)
        log.info("scheduler stopped")
        return 0
    finally:
        rt.close()


if __name__ == "__main__":
    sys.exit(main())
