"""Push end to end (issue 16): the Google and Microsoft fakes deliver real notifications over HTTP
to calsync's real web server, whose real scheduler syncs; the change shows up in the feed entries.

Covered for both providers: the channel opened by the first sync, a change seen in seconds,
renewal (Google: the new channel opens before the old one stops; Graph: PATCH), stop-sync
closing every channel, a burst of notifications being one or two syncs, a revoked grant
noticed at once (the connection turns relink-required and its incident opens), and a channel
that stops delivering shown as polled. Graph also: the validation handshake, a refused
handshake, and the lifecycle events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import running_web, soon, started, wait_for, web_env
from test_google import answer_consent

import models as m
from core import actions, clock, push, scheduler

EMAIL = "ada@example.com"


@contextlib.contextmanager
def running_scheduler(rt):
    """The real scheduler loop (the service's), in a thread, stopped at the end."""
    stop = threading.Event()
    thread = threading.Thread(target=lambda: scheduler.run_forever(rt, stop), name="scheduler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=40)
        assert not thread.is_alive(), "the scheduler did not stop"


def entries(rt, conn_id) -> list[str]:
    return sorted(e["subject"] for e in actions.list_entries(rt, conn_id))


def channel_rows(conn_id) -> list[m.PushChannel]:
    return list(m.PushChannel.select().join(m.Calendar).where(m.Calendar.connection == conn_id))


def sync_runs(conn_id) -> int:
    """Runs recorded so far: the SyncRun rows and the open stretch of quiet runs (core.sync_runs)."""
    return m.SyncRun.select().where(m.SyncRun.connection == conn_id).count() + m.Connection.get_by_id(conn_id).quiet_runs


def burst(rt, conn_id, notify, delivered, answered, reads) -> None:
    """100 notifications through the real scheduler: one or two syncs, one or two reads."""
    before, read_before = sync_runs(conn_id), reads()
    with running_scheduler(rt):
        notify(100)
        wait_for(delivered, timeout=20, what="100 notifications delivered")
        time.sleep(2.5)  # two scheduler ticks after the last one
    assert answered()
    runs = sync_runs(conn_id) - before
    assert 1 <= runs <= 2, runs
    assert reads() - read_before <= 2


# == Google ==================================================================================


@pytest.fixture
def grt(tmp_path, google):
    with started(web_env(tmp_path, CALSYNC_PUSH="on", **google.env())) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="UTC")
        with running_web(rt):
            yield rt


def connect_google(rt, google) -> int:
    url = actions.oauth_connect_url(rt, EMAIL, "google")["url"]
    back = answer_consent(google, url)
    return actions.oauth_callback(rt, "google", back.get("code", ""), back.get("state", ""), back.get("error", ""))["id"]


def watching_team(rt, google) -> int:
    """Ada's Google connection with the shared "Team" calendar turned on as busy (not hers, so off at first)."""
    conn_id = connect_google(rt, google)
    actions.set_calendar_roles(rt, conn_id, "Team", busy=True)
    actions.sync_now(rt, conn_id)
    return conn_id


def test_google_a_connection_is_watched_and_an_outside_change_arrives_in_seconds(grt, google):
    google.add_calendar("team@example.com", "Team", role="reader")
    google.add_calendar("holidays@example.com", "Holidays", role="reader")  # not its own and no role: not watched
    conn_id = watching_team(grt, google)
    (live_primary, live_team) = sorted(google.channels(), key=lambda c: c["calendar_id"] != EMAIL)
    assert {live_primary["calendar_id"], live_team["calendar_id"]} == {EMAIL, "team@example.com"}
    rows = channel_rows(conn_id)
    assert len(rows) == 2 and all(r.state == m.PUSH_LIVE and r.expires_at for r in rows)
    assert all(len(r.token_hash) == 64 for r in rows)  # only the secret's hash is kept
    # Google's "sync" message on opening reached calsync's webhook and was acknowledged.
    assert wait_for(lambda: [d for d in google.push_deliveries if d.state == "sync"], what="the sync messages")
    assert all(d.status == 200 for d in google.push_deliveries)
    detail = actions.connection_detail(grt, conn_id)
    assert detail["push"]["mode"] == "push"

    with running_scheduler(grt):
        start = soon(2, 10)
        google.add_event(EMAIL, "Dentist", start, start + dt.timedelta(hours=1))
        began = time.monotonic()
        wait_for(lambda: "Dentist" in entries(grt, conn_id), timeout=10, what="the pushed change")
        assert time.monotonic() - began < 5
        google.add_event("team@example.com", "Team offsite", start, start + dt.timedelta(hours=3))
        wait_for(lambda: "Team offsite" in entries(grt, conn_id), timeout=10, what="the busy source's change")


def test_google_a_burst_of_notifications_is_one_or_two_syncs(grt, google):
    conn_id = connect_google(grt, google)
    burst(
        grt,
        conn_id,
        lambda n: google.notify(EMAIL, count=n),
        delivered=lambda: len(google.push_deliveries) >= 100 + 1,  # and the opening "sync" message
        answered=lambda: all(d.status == 200 for d in google.push_deliveries),
        reads=lambda: len(google.api_calls("GET", "/events")),
    )


def test_google_channels_are_renewed_before_they_expire_new_one_first(grt, google):
    conn_id = connect_google(grt, google)
    (old,) = google.channels()
    later = clock.now() + dt.timedelta(days=6, hours=1)
    clock.set_now(lambda: later)  # within a day of the 7-day expiry
    actions.sync_now(grt, conn_id)
    (new,) = google.channels()
    assert new["id"] != old["id"]
    calls = [(c.method, c.path) for c in google.api_calls("POST")]
    watch_at = max(i for i, (_, path) in enumerate(calls) if path.endswith("/events/watch"))
    stop_at = max(i for i, (_, path) in enumerate(calls) if path.endswith("/channels/stop"))
    assert watch_at < stop_at  # no change can fall between the two channels
    (row,) = channel_rows(conn_id)
    assert row.channel_id == new["id"] and row.state == m.PUSH_LIVE
    # The old channel's notifications are stale now: refused, nothing asked for.
    m.Connection.update(sync_requested_at=None).execute()
    stale = requests.post(
        f"{grt.settings.base_url}/push/google",
        timeout=5,
        headers={
            "X-Goog-Channel-ID": old["id"],
            "X-Goog-Channel-Token": old["token"],
            "X-Goog-Resource-ID": old["resourceId"],
            "X-Goog-Resource-State": "exists",
            "X-Goog-Message-Number": "9",
        },
    )
    assert stale.status_code == 404
    assert m.Connection.get_by_id(conn_id).sync_requested_at is None


def test_google_stop_sync_closes_every_channel(grt, google):
    google.add_calendar("team@example.com", "Team", role="reader")
    conn_id = watching_team(grt, google)
    assert len(google.channels()) == 2
    actions.stop_sync(grt, conn_id, keep_events=True)
    assert google.channels() == []
    assert channel_rows(conn_id) == []


def test_google_a_revoked_grant_is_known_on_the_first_push_driven_sync(grt, google):
    conn_id = connect_google(grt, google)
    with running_scheduler(grt):
        google.revoke_grant()
        start = soon(3, 9)
        google.add_event(EMAIL, "Someone else's booking", start, start + dt.timedelta(hours=1))
        wait_for(
            lambda: m.Connection.get_by_id(conn_id).status == m.RELINK_REQUIRED, timeout=10, what="relink required after the revoked grant"
        )
    assert m.Incident.select().where(m.Incident.connection == conn_id, m.Incident.resolved_at.is_null()).exists()


def test_google_a_channel_that_stops_delivering_is_shown_and_polling_carries_the_calendar(grt, google):
    conn_id = connect_google(grt, google)
    google.silence_push()
    actions.book(grt, EMAIL, soon(2, 14).isoformat(), soon(2, 15).isoformat(), "Coaching session")
    actions.sync_now(grt, conn_id)  # calsync writes: Google should tell us so; it does not
    (row,) = channel_rows(conn_id)
    assert row.awaiting_since is not None
    later = clock.now() + push.ECHO_WITHIN + dt.timedelta(seconds=1)
    clock.set_now(lambda: later)
    actions.sync_now(grt, conn_id)
    (row,) = channel_rows(conn_id)
    assert row.state == m.PUSH_SILENT and "polling carries this calendar" in row.reason
    view = actions.connection_detail(grt, conn_id)["push"]
    assert view["mode"] == "polling" and "no notification came" in view["reason"]
    start = soon(4, 9)  # polling still reads what changed
    google.add_event(EMAIL, "Read by polling", start, start + dt.timedelta(hours=1))
    actions.sync_now(grt, conn_id)
    assert "Read by polling" in entries(grt, conn_id)
    google.silence_push(False)  # it delivers again: the channel is live again
    google.add_event(EMAIL, "Pushed again", start + dt.timedelta(hours=2), start + dt.timedelta(hours=3))
    wait_for(lambda: channel_rows(conn_id)[0].state == m.PUSH_LIVE, what="the channel live again")


def test_google_push_off_opens_no_channel(tmp_path, google):
    with started(web_env(tmp_path, CALSYNC_PUSH="off", **google.env())) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="UTC")
        conn_id = connect_google(rt, google)
        assert google.channels() == [] and channel_rows(conn_id) == []
        view = actions.connection_detail(rt, conn_id)["push"]
        assert view["mode"] == "polling" and "CALSYNC_PUSH is off" in view["reason"]


# == Microsoft ===============================================================================


def graph_env(tmp_path, graph, **extra):
    return web_env(
        tmp_path,
        CALSYNC_MICROSOFT_CLIENT_ID="cid",
        CALSYNC_MICROSOFT_CLIENT_SECRET="csecret",
        CALSYNC_MICROSOFT_AUTH_URL=graph.authorize_url,
        CALSYNC_MICROSOFT_TOKEN_URL=graph.token_url,
        CALSYNC_MICROSOFT_API_URL=graph.api_url,
        **extra,
    )


@pytest.fixture
def mrt(tmp_path, graph):
    with started(graph_env(tmp_path, graph, CALSYNC_PUSH="on")) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="UTC")
        with running_web(rt):
            yield rt


def connect_graph(rt, graph) -> int:
    url = actions.oauth_connect_url(rt, EMAIL, "microsoft")["url"]
    back = parse_qs(urlsplit(graph.consent_redirect(url)).query)
    return actions.oauth_callback(rt, "microsoft", back.get("code", [""])[0], back["state"][0], back.get("error", [""])[0])["id"]


def test_graph_a_subscription_passes_the_handshake_and_a_change_arrives_in_seconds(mrt, graph):
    conn_id = connect_graph(mrt, graph)
    subs = graph.subscriptions()
    assert subs and all(s["clientState"] and s["resource"].endswith("/events") for s in subs)
    assert [d for d in graph.push_deliveries if d.kind == "validation" and d.status == 200]
    rows = channel_rows(conn_id)
    assert {r.channel_id for r in rows} == {s["id"] for s in subs}
    assert all(
        r.token_hash == push.token_hash(s["clientState"])
        for r, s in zip(sorted(rows, key=lambda r: r.channel_id), sorted(subs, key=lambda s: s["id"]))
    )
    with running_scheduler(mrt):
        start = soon(2, 10)
        graph.add_event("Dentist", start, start + dt.timedelta(hours=1))
        began = time.monotonic()
        wait_for(lambda: "Dentist" in entries(mrt, conn_id), timeout=10, what="the pushed change")
        assert time.monotonic() - began < 5


def test_graph_a_refused_handshake_leaves_the_calendar_polled_and_says_why(tmp_path, graph):
    # No web server: Graph's validation request cannot reach calsync.
    with started(graph_env(tmp_path, graph, CALSYNC_PUSH="on")) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="UTC")
        conn_id = connect_graph(rt, graph)
        assert m.Connection.get_by_id(conn_id).status == m.ACTIVE  # the sync itself is not hurt
        assert graph.subscriptions() == []
        rows = channel_rows(conn_id)
        assert rows and all(r.state == m.PUSH_FAILED and "refused a push channel" in r.reason for r in rows)
        view = actions.connection_detail(rt, conn_id)["push"]
        assert view["mode"] == "polling" and "refused" in view["reason"]


def test_graph_a_burst_of_notifications_is_one_or_two_syncs(mrt, graph):
    conn_id = connect_graph(mrt, graph)
    burst(
        mrt,
        conn_id,
        lambda n: graph.notify(count=n),
        delivered=lambda: len([d for d in graph.push_deliveries if d.kind == "change"]) >= 100,
        answered=lambda: all(d.status in (200, 202) for d in graph.push_deliveries),
        reads=lambda: len([c for c in graph.calls if "delta" in c.path]),
    )


def test_graph_subscriptions_are_renewed_in_place(mrt, graph):
    conn_id = connect_graph(mrt, graph)
    (before,) = graph.subscriptions()
    later = clock.now() + dt.timedelta(days=2, hours=1)
    clock.set_now(lambda: later)  # within a day of the 3-day expiry
    actions.sync_now(mrt, conn_id)
    (after,) = graph.subscriptions()
    assert after["id"] == before["id"] and after["expiration"] > before["expiration"]
    assert [c for c in graph.calls if c.method == "PATCH" and "/subscriptions/" in c.path]


def test_graph_lifecycle_events_renew_recreate_and_resync(mrt, graph):
    conn_id = connect_graph(mrt, graph)
    (sub,) = graph.subscriptions()
    with running_scheduler(mrt):
        graph.send_lifecycle("reauthorizationRequired", sub["id"])
        wait_for(lambda: [c for c in graph.calls if c.method == "PATCH" and sub["id"] in c.path], what="the reauthorization")
        graph.send_lifecycle("subscriptionRemoved", sub["id"])
        wait_for(lambda: [s for s in graph.subscriptions() if s["id"] != sub["id"]], what="a new subscription")
        wait_for(
            lambda: {r.channel_id for r in channel_rows(conn_id)} == {s["id"] for s in graph.subscriptions()},
            what="calsync knowing the new subscription",
        )
        full_rounds = len([c for c in graph.calls if "delta" in c.path and "deltatoken" not in c.query_text])
        (new_sub,) = graph.subscriptions()
        graph.send_lifecycle("missed", new_sub["id"])
        wait_for(
            lambda: len([c for c in graph.calls if "delta" in c.path and "deltatoken" not in c.query_text]) > full_rounds,
            what="a full delta round after missed notifications",
        )


def test_graph_a_revoked_grant_is_known_within_seconds(mrt, graph):
    conn_id = connect_graph(mrt, graph)
    with running_scheduler(mrt):
        graph.revoke_grant()  # Graph sends reauthorizationRequired to the subscriptions
        wait_for(
            lambda: m.Connection.get_by_id(conn_id).status == m.RELINK_REQUIRED, timeout=10, what="relink required after the revoked grant"
        )
    assert m.Incident.select().where(m.Incident.connection == conn_id, m.Incident.resolved_at.is_null()).exists()


def test_graph_stop_sync_deletes_the_subscriptions(mrt, graph):
    conn_id = connect_graph(mrt, graph)
    assert graph.subscriptions()
    actions.stop_sync(mrt, conn_id, keep_events=True)
    assert graph.subscriptions() == [] and channel_rows(conn_id) == []
