"""Benchmark: from a change made in Google or Microsoft to the entry in calsync's feed, with push.

Run from the project root (``make bench``)::

    .venv/bin/python bench/push_bench.py [--quick] [--changes 30]

It starts the local Google and Microsoft Graph fakes (tests/fakes/, the ones every test runs
against), and calsync's real web server (waitress, for ``/push/google`` and ``/push/microsoft``)
and real scheduler loop in this process, with ``CALSYNC_PUSH=on`` on 127.0.0.1 and the default
sync interval (15 minutes: without push a change waits up to that long). One Google and one
Microsoft connection are made through their consent screens. Then, per provider, ``--changes``
times: an event is added in the fake "from outside", and the clock runs until calsync's feed
entries hold it (polled every 10 ms, at most 30 s). The fake notifies calsync; the webhook asks
for a sync; the scheduler's one-second tick starts it.

Prints and writes to ``bench/results/latest.json``: ``push_change_to_entry_p50_s`` and
``push_change_to_entry_p95_s`` (each a mapping provider -> seconds), the same flattened per
provider (``push_change_to_entry_p95_s_google`` …), and the syncs run per change. Target: p95
≤ 5 s for each provider. Sanity checks: every change arrives exactly once, every sync ends ok,
every notification was answered 2xx. Exit status 1 when a check fails (or a target is missed
with ``--strict``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from common import add_result_options, merge_results, render_table, results_path

TARGET_P95_S = 5.0
ARRIVAL_TIMEOUT = 30.0
EMAIL = "ada@example.com"


class BenchFailure(Exception):
    """The benchmark cannot give a valid result; ``str()`` says why."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


@contextlib.contextmanager
def _service(env: dict):
    """calsync's web server and scheduler loop (the service's own), in threads of this process."""
    from conftest import running_web, started

    from core import scheduler

    with started(env) as rt, running_web(rt):
        stop = threading.Event()
        loop = threading.Thread(target=lambda: scheduler.run_forever(rt, stop), name="scheduler", daemon=True)
        loop.start()
        try:
            yield rt
        finally:
            stop.set()
            loop.join(timeout=40)


def _connect_google(rt, google) -> int:
    from test_google import answer_consent

    from core import actions

    url = actions.oauth_connect_url(rt, EMAIL, "google")["url"]
    back = answer_consent(google, url)
    return actions.oauth_callback(rt, "google", back.get("code", ""), back.get("state", ""), back.get("error", ""))["id"]


def _connect_graph(rt, graph) -> int:
    from core import actions

    url = actions.oauth_connect_url(rt, EMAIL, "microsoft")["url"]
    back = parse_qs(urlsplit(graph.consent_redirect(url)).query)
    return actions.oauth_callback(rt, "microsoft", back.get("code", [""])[0], back["state"][0], back.get("error", [""])[0])["id"]


def _arrived(conn_id: int, subject: str) -> int:
    import models as m

    return m.FeedEntry.select().join(m.Calendar).where(m.Calendar.connection == conn_id, m.FeedEntry.subject == subject).count()


def _measure(provider: str, conn_id: int, add, changes: int) -> dict:
    import models as m

    latencies = []
    runs_before = m.SyncRun.select().where(m.SyncRun.connection == conn_id).count()
    base = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
    for i in range(changes):
        subject = f"{provider} change {i}"
        start = base + dt.timedelta(hours=i)
        began = time.perf_counter()
        add(subject, start, start + dt.timedelta(minutes=30))
        deadline = began + ARRIVAL_TIMEOUT
        while not _arrived(conn_id, subject):
            if time.perf_counter() > deadline:
                raise BenchFailure(f"{provider}: change {i} was not in the feed entries after {ARRIVAL_TIMEOUT:g} s")
            time.sleep(0.01)
        latencies.append(time.perf_counter() - began)
        if _arrived(conn_id, subject) != 1:
            raise BenchFailure(f"{provider}: change {i} is in the feed entries more than once")
    time.sleep(1.5)  # let a sync a late notification asked for finish before counting
    runs = m.SyncRun.select().where(m.SyncRun.connection == conn_id)
    bad = [r.outcome for r in runs if r.outcome != "ok"]
    if bad:
        raise BenchFailure(f"{provider}: syncs did not end ok: {bad[:5]}")
    return {
        "changes": changes,
        "latencies_s": [round(x, 4) for x in latencies],
        "p50_s": round(_percentile(latencies, 50), 3),
        "p95_s": round(_percentile(latencies, 95), 3),
        "max_s": round(max(latencies), 3),
        "syncs_per_change": round((runs.count() - runs_before) / changes, 2),
    }


def bench(changes: int) -> dict:
    from conftest import web_env
    from fakes.google_api import FakeGoogle
    from fakes.google_api import PushDelivery as GooglePush
    from fakes.microsoft_graph import GraphFake
    from fakes.microsoft_graph import PushDelivery as GraphPush

    from core import actions

    results = {}
    with tempfile.TemporaryDirectory(prefix="calsync-push-") as tmp:
        google, graph = FakeGoogle(EMAIL).start(), GraphFake().start()
        try:
            env = web_env(
                Path(tmp),
                CALSYNC_PUSH="on",
                CALSYNC_WORKERS="4",
                CALSYNC_MICROSOFT_CLIENT_ID="cid",
                CALSYNC_MICROSOFT_CLIENT_SECRET="csecret",
                CALSYNC_MICROSOFT_AUTH_URL=graph.authorize_url,
                CALSYNC_MICROSOFT_TOKEN_URL=graph.token_url,
                CALSYNC_MICROSOFT_API_URL=graph.api_url,
                **google.env(),
            )
            env.pop("CALSYNC_SYNC_INTERVAL", None)  # the default 15 minutes: only push can be this quick
            with _service(env) as rt:
                actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="UTC")
                g_conn, m_conn = _connect_google(rt, google), _connect_graph(rt, graph)
                for conn_id in (g_conn, m_conn):
                    mode = actions.connection_detail(rt, conn_id)["push"]["mode"]
                    if mode != "push":
                        raise BenchFailure(f"connection {conn_id} is not pushed ({mode})")
                results["google"] = _measure("google", g_conn, lambda s, a, b: google.add_event(EMAIL, s, a, b), changes)
                results["microsoft"] = _measure("microsoft", m_conn, lambda s, a, b: graph.add_event(s, a, b), changes)
            deliveries: list[GooglePush | GraphPush] = [*google.push_deliveries, *graph.push_deliveries]
            refused = [d for d in deliveries if d.status is None or not 200 <= d.status < 300]
            if refused:
                raise BenchFailure(f"{len(refused)} notification(s) were not answered 2xx: {refused[:3]}")
        finally:
            google.stop()
            graph.stop()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=30, help="outside changes per provider (default 30)")
    add_result_options(parser, "smoke run: --changes 5")
    args = parser.parse_args(argv)
    if args.quick:
        args.changes = 5
    args.output = results_path(args)
    if not 1 <= args.changes <= 500:
        parser.error("--changes must be between 1 and 500")
    print(
        f"push: {args.changes} outside change(s) per provider -> calsync's feed entries "
        f"(web server + scheduler on 127.0.0.1, sync interval 15 min)",
        flush=True,
    )
    try:
        results = bench(args.changes)
    except BenchFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    rows = [
        (
            p,
            r["changes"],
            f"{r['p50_s']:.2f}",
            f"{r['p95_s']:.2f}",
            f"{r['max_s']:.2f}",
            r["syncs_per_change"],
            "OK" if r["p95_s"] <= TARGET_P95_S else "MISSED",
        )
        for p, r in results.items()
    ]
    print(render_table(("provider", "changes", "p50 s", "p95 s", "max s", "syncs/change", f"p95 <= {TARGET_P95_S:g} s"), rows))
    keys = {
        "push_change_to_entry_p50_s": {p: r["p50_s"] for p, r in results.items()},
        "push_change_to_entry_p95_s": {p: r["p95_s"] for p, r in results.items()},
    }
    for p, r in results.items():
        keys[f"push_change_to_entry_p50_s_{p}"] = r["p50_s"]
        keys[f"push_change_to_entry_p95_s_{p}"] = r["p95_s"]
    merge_results(
        args.output,
        "push",
        keys,
        {
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "changes": args.changes,
            "quick": args.quick,
            "target_p95_s": TARGET_P95_S,
            "providers": results,
        },
    )
    print(f"\nwrote {args.output}")
    missed = [p for p, r in results.items() if r["p95_s"] > TARGET_P95_S]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
