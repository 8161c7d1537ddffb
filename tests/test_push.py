"""Push (issue 16): when push is on, and what the webhooks accept.

The webhooks are driven over HTTP against calsync's real waitress server. Here the channels
are rows as core.push writes them (a known secret's hash), so forged, stale and genuine
notifications can be told apart without a provider; the whole path through the Google and
Microsoft fakes (channel opened by a sync, notification, queued sync, entry) is in
tests/test_push_flow.py.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from conftest import make_env, running_web, started, web_env

import models as m
from core import clock, leases, push
from core.config import ConfigError, load_settings

SECRET = "the-channel-secret"


# -- when push is on ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url, mode, on, why",
    [
        ("https://calsync.example.com", "auto", True, ""),
        ("https://calsync.example.com/", "off", False, "CALSYNC_PUSH is off"),
        ("http://calsync.example.com", "auto", False, "not an https:// URL"),
        ("http://127.0.0.1:8080", "auto", False, "not an https:// URL"),
        ("https://localhost:8443", "auto", False, "cannot reach"),
        ("https://intranet", "auto", False, "cannot reach"),
        ("https://10.1.2.3", "auto", False, "private address 10.1.2.3"),
        ("https://[::1]:8443", "auto", False, "private address ::1"),
        ("http://127.0.0.1:8080", "on", True, ""),
    ],
)
def test_push_is_on_only_for_a_base_url_the_providers_can_reach_unless_asked_for(tmp_path, base_url, mode, on, why):
    settings = load_settings(make_env(tmp_path, CALSYNC_BASE_URL=base_url, CALSYNC_PUSH=mode), read_dotenv=False)
    assert push.enabled(settings) is on
    assert why in push.why_off(settings) and bool(push.why_off(settings)) is not on
    line = push.status_line(settings)
    assert line.startswith("push is on" if on else "push is off") and (why in line)


def test_an_unknown_push_mode_is_a_clear_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="CALSYNC_PUSH: must be one of auto, on, off"):
        load_settings(make_env(tmp_path, CALSYNC_PUSH="sometimes"), read_dotenv=False)


# -- the webhooks ------------------------------------------------------------------------------


@pytest.fixture
def prt(tmp_path):
    with started(web_env(tmp_path, CALSYNC_PUSH="on")) as rt:
        yield rt


@pytest.fixture
def web(prt):
    with running_web(prt) as server:
        yield server


def _watched(provider: str, channel_id: str, resource_id: str = "res-1", state: str = m.PUSH_LIVE) -> m.PushChannel:
    staff = m.Staff.create(email=f"{channel_id}@example.com", name="Ada")
    conn = m.Connection.create(staff=staff, provider=provider, account=staff.email, status=m.ACTIVE)
    cal = m.Calendar.create(
        connection=conn,
        remote_id="primary",
        name="Ada's calendar",
        is_destination=True,
        is_primary=True,
        sync_token="delta-1",
        push_check_at=clock.now() + dt.timedelta(days=2),
        full_read_at=clock.now(),
    )
    return m.PushChannel.create(
        calendar=cal,
        provider=provider,
        channel_id=channel_id,
        resource_id=resource_id,
        token_hash=push.token_hash(SECRET),
        state=state,
        expires_at=clock.now() + dt.timedelta(days=3),
    )


def _requested(channel: m.PushChannel) -> bool:
    conn = m.Connection.get_by_id(channel.calendar.connection_id)
    return conn.sync_requested_at is not None


def _google(prt, channel_id="chan-1", token=SECRET, resource="res-1", state="exists", **extra):
    headers = {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Channel-Token": token,
        "X-Goog-Resource-ID": resource,
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": "2",
        **extra,
    }
    return requests.post(f"{prt.settings.base_url}/push/google", headers=headers, timeout=5)


def test_a_google_notification_with_the_channel_secret_asks_for_one_sync(prt, web):
    channel = _watched("google", "chan-1")
    answer = _google(prt)
    assert answer.status_code == 200
    assert _requested(channel)
    kept = m.PushChannel.get_by_id(channel.id)
    assert kept.messages == 1 and kept.last_message_at is not None


def test_googles_sync_handshake_is_acknowledged_without_a_sync(prt, web):
    channel = _watched("google", "chan-1")
    assert _google(prt, state="sync").status_code == 200
    assert not _requested(channel)


@pytest.mark.parametrize(
    "change",
    [
        {"token": "a-guessed-secret"},
        {"token": ""},
        {"channel_id": "chan-unknown"},
        {"resource": "res-other"},
        {"channel_id": "c" * 5000},
        {"token": SECRET + "x" * 5000},
    ],
)
def test_forged_or_stale_google_notifications_are_refused_and_change_nothing(prt, web, change):
    channel = _watched("google", "chan-1")
    answer = _google(prt, **change)
    assert answer.status_code in (404, 431), answer.text
    assert not _requested(channel)
    assert m.PushChannel.get_by_id(channel.id).messages == 0


def test_a_google_channel_that_the_provider_refused_takes_no_notifications(prt, web):
    channel = _watched("google", "chan-1", state=m.PUSH_FAILED)
    assert _google(prt).status_code == 404
    assert not _requested(channel)


def test_an_unknown_google_resource_state_is_a_bad_request(prt, web):
    channel = _watched("google", "chan-1")
    assert _google(prt, state="exploded").status_code == 400
    assert not _requested(channel)


def test_a_notification_on_a_stopped_connection_asks_for_nothing(prt, web):
    channel = _watched("google", "chan-1")
    m.Connection.update(status=m.STOPPED).execute()
    assert _google(prt).status_code == 200
    assert not _requested(channel)


def _graph(prt, body, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        f"{prt.settings.base_url}/push/microsoft", data=data, headers={"Content-Type": "application/json"}, timeout=5, **kwargs
    )


def _change(sub_id="sub-1", client_state=SECRET, **extra) -> dict:
    return {
        "subscriptionId": sub_id,
        "clientState": client_state,
        "changeType": "updated",
        "resource": "Users/u/Events/e1",
        "tenantId": "t",
        **extra,
    }


def test_graphs_validation_handshake_gets_the_token_back_as_plain_text(prt, web):
    token = "Validation: Testing client application reachability for subscription Request-Id: 1 <script>"
    answer = requests.post(f"{prt.settings.base_url}/push/microsoft", params={"validationToken": token}, timeout=5)
    assert answer.status_code == 200 and answer.text == token
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    too_long = requests.post(f"{prt.settings.base_url}/push/microsoft", params={"validationToken": "x" * 5000}, timeout=5)
    assert too_long.status_code == 400


def test_a_graph_change_notification_with_the_client_state_asks_for_a_sync(prt, web):
    channel = _watched("microsoft", "sub-1")
    answer = _graph(prt, {"value": [_change()]})
    assert answer.status_code == 202
    assert _requested(channel)


def test_a_burst_of_graph_notifications_is_one_requested_sync(prt, web):
    channel = _watched("microsoft", "sub-1")
    assert _graph(prt, {"value": [_change() for _ in range(100)]}).status_code == 202
    conn = m.Connection.get_by_id(channel.calendar.connection_id)
    # One request on the connection, due within the settling time of the first: the burst is one sync.
    assert conn.sync_requested_at is not None
    assert conn.next_sync_at <= clock.now() + dt.timedelta(seconds=leases.SETTLE)
    assert m.PushChannel.get_by_id(channel.id).messages == 100


@pytest.mark.parametrize(
    "item",
    [
        _change(client_state="guessed"),
        _change(sub_id="sub-unknown"),
        _change(client_state=None),
        {"subscriptionId": 7, "clientState": SECRET},
        _change(lifecycleEvent="selfDestruct"),
    ],
)
def test_forged_graph_notifications_are_refused_and_change_nothing(prt, web, item):
    channel = _watched("microsoft", "sub-1")
    answer = _graph(prt, {"value": [item]})
    assert answer.status_code == 403
    assert not _requested(channel)
    kept = m.Calendar.get_by_id(channel.calendar_id)
    assert kept.sync_token == "delta-1" and kept.full_read_at is not None


@pytest.mark.parametrize(
    "body, status",
    [
        (b"not json", 400),
        ({"value": []}, 400),
        ({"value": "nope"}, 400),
        ([1, 2, 3], 400),
        ({"value": [_change()] * 1001}, 400),
        ("[" * 100 + "]" * 100, 400),
        (b'{"value": [' + b'"x",' * 300_000 + b'"x"]}', 413),
    ],
)
def test_malformed_graph_deliveries_are_refused(prt, web, body, status):
    channel = _watched("microsoft", "sub-1")
    assert _graph(prt, body).status_code == status
    assert not _requested(channel)


def test_graph_lifecycle_missed_reads_the_calendar_anew(prt, web):
    channel = _watched("microsoft", "sub-1")
    assert _graph(prt, {"value": [_change(lifecycleEvent="missed")]}).status_code == 202
    assert m.Calendar.get_by_id(channel.calendar_id).full_read_at is None  # the next sync reads it whole
    assert _requested(channel)


def test_graph_lifecycle_subscription_removed_forgets_it_and_the_next_sync_opens_a_new_one(prt, web):
    channel = _watched("microsoft", "sub-1")
    assert _graph(prt, {"value": [_change(lifecycleEvent="subscriptionRemoved")]}).status_code == 202
    assert not m.PushChannel.select().where(m.PushChannel.id == channel.id).exists()
    assert m.Calendar.get_by_id(channel.calendar_id).push_check_at <= clock.now()
    assert _requested(channel)


def test_graph_lifecycle_reauthorization_required_is_due_at_the_next_sync(prt, web):
    channel = _watched("microsoft", "sub-1")
    assert _graph(prt, {"value": [_change(lifecycleEvent="reauthorizationRequired")]}).status_code == 202
    assert m.Calendar.get_by_id(channel.calendar_id).push_check_at <= clock.now()
    assert m.PushChannel.get_by_id(channel.id).state == m.PUSH_REAUTHORIZE
    assert _requested(channel)


def test_one_forged_notification_among_genuine_ones_does_not_spoil_them(prt, web):
    channel = _watched("microsoft", "sub-1")
    answer = _graph(prt, {"value": [_change(client_state="guessed"), _change()]})
    assert answer.status_code == 202
    assert _requested(channel)
    assert m.PushChannel.get_by_id(channel.id).messages == 1
