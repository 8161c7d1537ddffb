"""The Slack bot end to end: signed requests to ``/slack/events``, answers read from the local Slack stub.

Every request goes through the real path: Flask → Bolt (signature and
timestamp checked) → calsync's listeners → ``core.actions`` → the real
``slack_sdk`` client → ``tests/fakes/slack_api.SlackStub`` on 127.0.0.1.
Alerts go through the core's outbox (``deliver_pending``) and calsync's
``SlackSender``. CalDAV is a real Radicale server on loopback.

Slack user ids here are upper-case letters and digits (``UADA00001``), as Slack
makes them: the bot reads ``<@UADA00001|ada>`` mentions with Slack's own alphabet.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
import requests
from conftest import Story, make_env, running_web, soon
from conftest_ports import free_port
from fakes.slack_api import (
    SlackStub,
    block_action_body,
    event_body,
    sign,
    slash_command_body,
    view_submission_body,
)

import models as m
from bot.app import create_app as create_bolt_app
from bot.app import install_sender
from core import actions, clock, incidents, outbox, runtime
from core.config import load_settings
from web.app import create_app as create_web_app

ADA, BOB, SUPPORT, STRANGER = "UADA00001", "UBOB00001", "USUP00001", "UNOBODY01"  # Slack's shape: U + 8 to 11
EVE = "UEVE00001"
SIGNING_SECRET = "sig-secret"
NEW_PASSWORD = "new-pass-1"
FORM = "application/x-www-form-urlencoded"
ACK_LIMIT = 3.0  # seconds: Slack shows the user an error when a command is not acknowledged in time
WAIT = 10.0  # seconds: the longest a test waits for a listener running after its ack


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def stub():
    s = SlackStub(
        users=[
            {"id": ADA, "email": "ada@example.com", "name": "ada"},
            {"id": BOB, "email": "bob@example.com", "name": "bob"},
            {"id": SUPPORT, "email": "support@example.com", "name": "support"},
        ]
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def rt(tmp_path, stub):
    """A runtime with Slack configured against the stub, linking to a web server on a free port."""
    port = free_port()
    runtime_ = runtime.start(
        load_settings(
            make_env(
                tmp_path,
                SLACK_BOT_TOKEN="xoxb-test",
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_API_URL=stub.url,
                CALSYNC_SUPPORT_USERS=SUPPORT,
                CALSYNC_SUPPORT_CHANNEL="C_SUPPORT",
                CALSYNC_BASE_URL=f"http://127.0.0.1:{port}",
                CALSYNC_HTTP_HOST="127.0.0.1",
                CALSYNC_HTTP_PORT=port,
            ),
            read_dotenv=False,
        )
    )
    try:
        yield runtime_
    finally:
        runtime_.close()
        clock.set_now(None)


@pytest.fixture
def bolt(rt):
    app = create_bolt_app(rt)
    assert app is not None
    install_sender(rt, app)
    return app


@pytest.fixture
def web(rt, bolt):
    return create_web_app(rt, bolt).test_client()


@pytest.fixture
def web_server(rt, bolt):
    with running_web(rt, bolt_app=bolt) as server:
        yield server


@pytest.fixture
def slack(web, stub):
    return Slack(web, stub)


@pytest.fixture
def ada(rt, radicale):
    """Ada (Slack ADA) with one active CalDAV connection to her "Work" calendar."""
    story = Story(rt, radicale)
    m.Staff.update(slack_id=ADA).where(m.Staff.email == "ada@example.com").execute()
    story.sync()
    assert story.status()["status"] == "active"
    return story


def add_bob(rt, radicale) -> int:
    """Bob (Slack BOB) with his own connection, to the same account's "Home" calendar."""
    radicale.make_calendar("home", "Home")
    actions.add_staff(rt, "bob@example.com", "Bob Babbage", slack_id=BOB)
    conn = actions.connect(
        rt, "bob@example.com", "caldav", url=radicale.base_url, username=radicale.username, password=radicale.password, calendar="Home"
    )
    return conn["id"]


# -- Slack's side of the conversation -----------------------------------------------------------


class Slack:
    """What Slack does: sign and POST requests to /slack/events; what reached the stub comes back."""

    def __init__(self, web, stub: SlackStub):
        self.web = web
        self.stub = stub
        self._keys = iter(range(1, 10_000))

    def post(self, body: bytes, content_type: str = FORM, headers: dict | None = None):
        headers = headers if headers is not None else sign(SIGNING_SECRET, body)
        started = time.monotonic()
        answer = self.web.post("/slack/events", data=body, headers={**headers, "Content-Type": content_type})
        elapsed = time.monotonic() - started
        if answer.status_code == 200:
            assert elapsed < ACK_LIMIT, f"acknowledged after {elapsed:.1f}s"
        return answer

    def new_response_url(self) -> tuple[str, str]:
        key = f"r{next(self._keys)}"
        return key, self.stub.response_url(key)

    def command(self, text: str, user: str = ADA, replies: int = 1, trigger_id: str = "t1") -> list[dict]:
        """``/calsync <text>`` by ``user``; the first ``replies`` answers sent to its response_url."""
        key, url = self.new_response_url()
        answer = self.post(slash_command_body(text=text, user_id=user, response_url=url, trigger_id=trigger_id))
        assert answer.status_code == 200
        return self.replies(key, replies) if replies else []

    def action(self, action_id: str, user: str = ADA, value: str | None = None, replies: int = 1, **extra) -> list[dict]:
        """A click on a button (or a choice in a select) in a message; the answers to its response_url."""
        key, url = self.new_response_url()
        answer = self.post(block_action_body(action_id, value=value, user_id=user, channel_id="D" + user, response_url=url, **extra))
        assert answer.status_code == 200
        return self.replies(key, replies) if replies else []

    def submit(self, view: dict, user: str = ADA, values: dict | None = None):
        answer = self.post(
            view_submission_body(view["callback_id"], private_metadata=view["private_metadata"], state_values=values or {}, user_id=user)
        )
        assert answer.status_code == 200
        return answer

    def event(self, event: dict):
        answer = self.post(event_body(event), content_type="application/json")
        assert answer.status_code == 200
        return answer

    def replies(self, key: str, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + WAIT
        while True:
            found = [payload for k, payload in list(self.stub.response_urls) if k == key]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"expected {count} answer(s) on {key}, got {found}"
                return found
            time.sleep(0.02)

    def opened_view(self, count: int = 1) -> dict:
        calls = self.stub.wait_for("views.open", count, timeout=WAIT)
        assert len(calls) >= count, "no modal was opened"
        response = calls[count - 1].response
        assert response is not None, "views.open was not answered"
        return response["view"]

    def dms(self, user: str, count: int = 1) -> list[dict]:
        """The bot's messages in its DM with ``user`` once there are ``count`` of them."""
        deadline = time.monotonic() + WAIT
        while len(self.stub.messages(user)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.stub.messages(user)


def text_of(thing) -> str:
    """Every piece of text in a message, reply or view (its ``text`` and all its blocks), one string."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "url", "value") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(thing)
    return "\n".join(found)


def elements(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"]]


def audit_rows(actor: str | None = None) -> list[m.AuditEntry]:
    query = m.AuditEntry.select().order_by(m.AuditEntry.id)
    if actor is not None:
        query = query.where(m.AuditEntry.actor == actor)
    return list(query)


def break_password(story: Story, subject: str = "Booked meanwhile") -> None:
    """Ada's CalDAV password changes on the server and an appointment is booked before anyone notices."""
    story.server.set_password(NEW_PASSWORD)
    story.book(soon(), subject=subject)
    story.sync()
    assert story.status()["status"] == "relink_required"


def use_relink_link(url: str, password: str) -> requests.Response:
    """What Ada does in her browser: open the link, type the new password, submit."""
    with requests.Session() as browser:
        page = browser.get(url, timeout=10)
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found is not None, page.text
        csrf = found.group(1)
        return browser.post(url, data={"csrf_token": csrf, "password": password}, timeout=30)


# -- alerts -----------------------------------------------------------------------------------


def test_a_changed_password_sends_one_dm_that_turns_into_reconnected_when_the_link_is_used(rt, radicale, bolt, stub, web_server):
    story = Story(rt, radicale)  # no Slack id: the sender finds Ada by her e-mail
    story.sync()
    break_password(story)
    story.sync()  # the same break seen twice is still one incident

    outbox.deliver_pending(rt)
    [lookup] = stub.calls_to("users.lookupByEmail")
    assert lookup.params["email"] == "ada@example.com"
    assert m.Staff.get(m.Staff.email == "ada@example.com").slack_id == ADA  # remembered for next time
    [alert] = stub.messages(ADA)
    said = text_of(alert)
    # The phone's notification and the header say what broke and what waits; the reason is said once.
    headline = "Your CalDAV calendar needs your new password — 1 appointment is waiting"
    assert alert["text"] == headline and alert["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": headline}}
    assert said.count("rejected the username or password") == 1 and "rejected our credentials" not in said
    assert f"`{radicale.username}`" in said and "*Waiting to be added to your calendar (1):*" in said
    assert "Booked meanwhile" in said
    buttons = {e["text"]["text"]: e for e in elements(alert["blocks"])}
    assert set(buttons) == {"Relink", "Test connection", "Download missed (.ics)"}
    relink_url = buttons["Relink"]["url"]
    assert relink_url.startswith(f"{rt.settings.base_url}/relink/")
    assert buttons["Test connection"]["value"] == str(story.conn_id)

    story.sync()
    outbox.deliver_pending(rt)
    assert len(stub.calls_to("chat.postMessage")) == 1, "a failing run must not alert again"

    done = use_relink_link(relink_url, NEW_PASSWORD)
    assert done.status_code == 200 and "connected again" in done.text
    assert story.status()["status"] == "active"

    outbox.deliver_pending(rt)
    [update] = stub.calls_to("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (alert["channel"], alert["ts"])
    [message] = stub.messages(ADA)  # the same message, changed in place
    assert message["ts"] == alert["ts"] and "edited" in message
    assert "Reconnected" in text_of(message) and "1 missed appointment(s) delivered" in text_of(message)
    assert elements(message["blocks"]) == [], "the fix buttons are gone once it is fixed"
    assert len(stub.calls_to("chat.postMessage")) == 1
    booked = [ics for ics in story.events().values() if "Booked meanwhile" in ics]
    assert len(booked) == 1
    # The App Home follows the status: drawn at the alert and again at the fix.
    homes = stub.calls_to("views.publish")
    assert len(homes) == 2 and all(h.params["user_id"] == ADA for h in homes)
    assert "Active" in json.dumps(stub.home_view(ADA))

    calls = len(stub.calls)
    assert outbox.deliver_pending(rt) == {"sent": 0, "failed": 0}
    assert len(stub.calls) == calls, "nothing is sent twice"
    assert requests.get(relink_url, timeout=10).status_code == 410  # the link was single-use


def test_a_rate_limited_alert_is_retried_after_retry_after_and_delivered_once(rt, ada, bolt, stub):
    break_password(ada)
    stub.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)

    assert outbox.deliver_pending(rt)["failed"] == 0
    first, second = stub.calls_to("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.0, "Retry-After was not honoured"
    assert len(stub.messages(ADA)) == 1
    assert outbox.deliver_pending(rt) == {"sent": 0, "failed": 0}
    assert len(stub.calls_to("chat.postMessage")) == 2


def test_an_alert_slack_refuses_stays_in_the_outbox_and_is_sent_once_later(rt, ada, bolt, stub):
    break_password(ada)
    stub.fail_next("chat.postMessage", "internal_error")

    assert outbox.deliver_pending(rt)["failed"] == 1
    assert stub.messages(ADA) == []
    [waiting] = m.Delivery.select().where(m.Delivery.channel == "slack")
    assert waiting.state == m.DELIVERY_PENDING and "internal_error" in waiting.last_error

    assert outbox.deliver_pending(rt) == {"sent": 0, "failed": 0}, "not before its backoff"
    later = clock.now() + dt.timedelta(hours=1)
    clock.set_now(lambda: later)
    assert outbox.deliver_pending(rt) == {"sent": 1, "failed": 0}
    assert len(stub.messages(ADA)) == 1
    assert outbox.deliver_pending(rt) == {"sent": 0, "failed": 0}
    assert len(stub.messages(ADA)) == 1


def test_a_connection_pending_for_25_hours_is_escalated_to_the_support_channel(rt, radicale, bolt, stub):
    story = Story(rt, radicale)  # connected, never synced: pending
    assert story.status()["status"] == "pending"
    later = clock.now() + dt.timedelta(hours=25)
    clock.set_now(lambda: later)

    assert incidents.check(rt)["escalations"] == 1
    outbox.deliver_pending(rt)
    [escalation] = stub.messages("C_SUPPORT")
    said = text_of(escalation)
    assert "Support needed" in said and "ada@example.com" in said and f"Connection {story.conn_id}" in said
    assert stub.messages(ADA) == [], "the escalation is for support, not a DM to the staff member"

    assert incidents.check(rt)["escalations"] == 0
    outbox.deliver_pending(rt)
    assert len(stub.messages("C_SUPPORT")) == 1


def test_a_deleted_primary_calendar_offers_a_picker_and_the_choice_delivers_the_missed_appointment(rt, ada, bolt, stub, slack):
    home_url = ada.server.make_calendar("home", "Home")
    ada.server.delete_calendar(ada.calendar_url)
    ada.book(soon(), subject="Waiting for a calendar")
    ada.sync()
    assert ada.status()["status"] == "calendar_missing"

    outbox.deliver_pending(rt)
    [alert] = stub.messages(ADA)
    [picker] = [e for e in elements(alert["blocks"]) if e["type"] == "static_select"]
    assert picker["action_id"] == "calsync_primary_select"
    choices = {o["text"]["text"]: o["value"] for o in picker["options"]}
    assert set(choices) == {"Home"}, "only calendars that exist and can be written are offered"
    assert slack.command("primary", replies=0) == []
    [offered] = [b["element"]["options"] for b in slack.opened_view()["blocks"] if b["type"] == "input"]
    assert [o["text"]["text"] for o in offered] == ["Home"]

    [answer] = slack.action(
        "calsync_primary_select",
        action={"type": "static_select", "selected_option": {"text": {"type": "plain_text", "text": "Home"}, "value": choices["Home"]}},
    )
    assert answer["response_type"] == "ephemeral"
    assert "'Home'" in answer["text"] and "Active" in answer["text"] and "1 appointment(s) written" in answer["text"]
    assert ada.status()["status"] == "active"
    events = ada.server.list_events(home_url)
    assert len(events) == 1 and "Waiting for a calendar" in next(iter(events.values()))
    assert [a.actor for a in audit_rows() if a.action == "connection.primary"] == [f"slack:{ADA}"]

    outbox.deliver_pending(rt)
    [message] = stub.messages(ADA)
    assert message["ts"] == alert["ts"] and "Reconnected" in text_of(message)


def test_an_extra_calendar_that_breaks_is_told_at_once_once_and_again_when_it_works(rt, ada, bolt, stub, slack):
    """Issue 18: an extra write calendar's trouble opens no incident (the primary syncs on), but its
    staff member hears of it at once, with what waits for it and the Calendars button; once per change."""
    team = ada.server.make_calendar("team", "Team")
    actions.calendar_roles(rt, ada.conn_id, refresh=True)
    actions.set_calendar_roles(rt, ada.conn_id, "Team", write=True)
    ada.sync()
    ada.server.delete_calendar(team)
    ada.book(soon(2, 10), subject="Booked meanwhile")
    ada.sync()
    assert ada.status()["status"] == "active"
    outbox.deliver_pending(rt)
    [alert] = stub.messages(ADA)
    said = text_of(alert)
    assert alert["text"] == "Your calendar 'Team' cannot take appointments — 1 appointment is waiting", alert["text"]
    assert "was deleted" in said and "Booked meanwhile" in said and "/calsync calendars" in said
    [open_button] = [e for e in elements(alert["blocks"]) if e["type"] == "button"]
    assert open_button["action_id"] == "calsync_calendars_open"
    ada.sync()
    outbox.deliver_pending(rt)
    assert len(stub.messages(ADA)) == 1, "the same trouble seen again is not told twice"

    slack.action("calsync_calendars_open", value=str(ada.conn_id), replies=0)
    assert slack.opened_view()["callback_id"] == "calsync_calendars"

    ada.server.make_calendar("team", "Team")
    ada.sync()
    outbox.deliver_pending(rt)
    _, back = slack.dms(ADA, 2)
    assert back["text"] == "Your calendar 'Team' takes appointments again"
    assert "the 1 appointment(s) that waited for it are being added now" in text_of(back)
    assert [n.event for n in m.Notification.select().order_by(m.Notification.id)] == ["calendar.trouble", "calendar.recovered"]


# -- signed requests ------------------------------------------------------------------------------


def test_a_forged_or_stale_request_is_refused_with_401_and_nothing_is_done(rt, ada, bolt, stub, slack):
    key, url = slack.new_response_url()
    body = slash_command_body(text="relink", user_id=ADA, response_url=url)
    links = m.RelinkLink.select().count()
    audits = len(audit_rows())

    forged = slack.post(body, headers=sign("not-the-secret", body))
    stale = slack.post(body, headers=sign(SIGNING_SECRET, body, timestamp=int(time.time()) - 10 * 60))
    unsigned = slack.post(body, headers={})
    tampered_body = body.replace(b"relink", b"stop")
    tampered = slack.post(tampered_body, headers=sign(SIGNING_SECRET, body))
    click = block_action_body("calsync_test", value=str(ada.conn_id), user_id=ADA, response_url=url)
    forged_click = slack.post(click, headers=sign("not-the-secret", click))
    assert [r.status_code for r in (forged, stale, unsigned, tampered, forged_click)] == [401] * 5

    time.sleep(0.5)  # a listener that wrongly ran would have answered by now
    assert stub.calls == [] and stub.response_urls == []
    assert m.RelinkLink.select().count() == links and len(audit_rows()) == audits
    assert ada.status()["status"] == "active"

    # the same request, signed with the right secret now, does the work
    assert slack.post(body).status_code == 200
    [reply] = slack.replies(key)
    assert "/relink/" in reply["text"]


# -- /calsync ---------------------------------------------------------------------------------------


def test_help_lists_every_subcommand(rt, bolt, slack):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", slack_id=ADA)
    [reply] = slack.command("help")
    assert reply["response_type"] == "ephemeral"
    said = text_of(reply)
    for sub in ["status", "test [N]", "relink [N]", "connect", "feed", "feed reset", "download [N]", "stop [N]", "primary [N]", "help"]:
        assert f"`/calsync {sub}`" in said, sub
    assert "support status" not in said, "staff are not shown what only support can do"
    [empty] = slack.command("")
    assert text_of(empty) == said

    [for_support] = slack.command("help", user=SUPPORT)
    assert "`/calsync support status`" in text_of(for_support) and "@person" in text_of(for_support)


def test_an_unknown_subcommand_says_i_dont_know_and_points_to_help(rt, bolt, slack):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", slack_id=ADA)
    [reply] = slack.command("frobnicate")
    assert reply["response_type"] == "ephemeral"
    assert "I don't know `frobnicate`" in reply["text"] and "/calsync help" in reply["text"]


def test_status_answers_privately_with_the_connection(rt, ada, bolt, slack):
    [reply] = slack.command("status")
    assert reply["response_type"] == "ephemeral"
    said = text_of(reply)
    assert "Your calendar connections" in said
    assert f"*{ada.conn_id}.* CalDAV · `{ada.server.username}`" in said and "Active" in said


def test_status_of_a_slack_user_not_yet_linked_finds_the_staff_member_by_e_mail(rt, ada, bolt, stub, slack):
    m.Staff.update(slack_id=None).where(m.Staff.email == "ada@example.com").execute()
    [reply] = slack.command("status")
    assert "Your calendar connections" in text_of(reply)
    assert m.Staff.get(m.Staff.email == "ada@example.com").slack_id == ADA
    assert stub.calls_to("users.info")[0].params["user"] == ADA


def test_feed_gives_the_private_feed_url_privately_and_it_works(rt, ada, bolt, web, slack):
    [reply] = slack.command("feed")
    assert reply["response_type"] == "ephemeral"
    url = re.search(rf"{re.escape(rt.settings.base_url)}/feeds/\S+\.ics", reply["text"]).group(0)
    answer = web.get(url[len(rt.settings.base_url) :])
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar")


def test_feed_reset_asks_first_and_then_the_old_url_stops_working(rt, ada, bolt, web, stub, slack):
    [reply] = slack.command("feed")
    old = re.search(r"/feeds/\S+\.ics", reply["text"]).group(0)

    assert slack.command("feed reset", replies=0) == []
    modal = slack.opened_view()
    assert modal["callback_id"] == "calsync_feed_reset" and "stops working" in text_of(modal)
    assert web.get(old).status_code == 200, "nothing happens before the modal is submitted"

    slack.submit(modal)
    [dm] = slack.dms(ADA)
    new = re.search(r"/feeds/\S+\.ics", dm["text"]).group(0)
    assert new != old and web.get(new).status_code == 200
    assert web.get(old).status_code == 404
    assert [a.actor for a in audit_rows() if a.action == "feed.reset"] == [f"slack:{ADA}"]


def test_connect_gives_a_link_to_the_connect_page(rt, bolt, web, slack):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", slack_id=ADA)
    [reply] = slack.command("connect")
    assert reply["response_type"] == "ephemeral"
    [button] = elements(reply["blocks"])
    assert button["url"].startswith(f"{rt.settings.base_url}/connect/")
    assert web.get(button["url"][len(rt.settings.base_url) :]).status_code == 200


def test_relink_and_download_answer_privately_with_working_links(rt, ada, bolt, web, slack):
    break_password(ada)
    [relink] = slack.command("relink")
    assert relink["response_type"] == "ephemeral"
    [button] = elements(relink["blocks"])
    assert button["url"].startswith(f"{rt.settings.base_url}/relink/")
    assert web.get(button["url"][len(rt.settings.base_url) :]).status_code == 200

    [download] = slack.command("download")
    assert download["response_type"] == "ephemeral" and "1 appointment(s) missed" in text_of(download)
    [button] = elements(download["blocks"])
    snapshot = web.get(button["url"][len(rt.settings.base_url) :])
    assert snapshot.status_code == 200 and "Booked meanwhile" in snapshot.text


def test_stop_shows_what_will_happen_and_stops_only_on_submit(rt, ada, bolt, stub, slack):
    ada.book(soon(), subject="On the calendar")
    ada.sync()
    assert len(ada.events()) == 1

    assert slack.command(f"stop {ada.conn_id}", replies=0) == []
    modal = slack.opened_view()
    assert modal["callback_id"] == "calsync_stop"
    # Sentences for people, and a confirm button that says what it does (no CLI words).
    plan = actions.stop_plan(rt, ada.conn_id, for_support=False)
    assert plan["sentences"] and all(sentence in text_of(modal) for sentence in plan["sentences"])
    assert modal["submit"]["text"] == "Stop and remove 1 event"
    assert "--force" not in text_of(modal) and "event(s)" not in text_of(modal)
    time.sleep(0.2)
    assert ada.status()["status"] == "active" and len(ada.events()) == 1, "nothing happens before submit"

    slack.submit(modal, user=BOB)  # someone else submitting Ada's modal (a forged submission)
    [refused] = slack.dms(BOB)
    assert refused["text"].startswith("Nothing was stopped")
    assert ada.status()["status"] == "active"

    slack.submit(modal)
    [done] = slack.dms(ADA)
    assert f"Sync of connection {ada.conn_id} stopped. 1 event was removed from the calendar." in done["text"]
    assert ada.status()["status"] == "stopped" and ada.events() == {}
    assert [a.actor for a in audit_rows() if a.action == "connection.stop"] == [f"slack:{ADA}"]


def test_primary_opens_a_calendar_picker_and_the_choice_is_saved_on_submit(rt, ada, bolt, stub, slack):
    ada.server.make_calendar("home", "Home")
    assert slack.command("primary", replies=0) == []
    modal = slack.opened_view()
    assert modal["callback_id"] == "calsync_primary"
    [picker] = [b["element"] for b in modal["blocks"] if b["type"] == "input"]
    options = {o["text"]["text"]: o["value"] for o in picker["options"]}
    assert set(options) == {"Work", "Home"}

    slack.submit(
        modal,
        values={
            "calendar": {
                "choice": {
                    "type": "static_select",
                    "selected_option": {"text": {"type": "plain_text", "text": "Home"}, "value": options["Home"]},
                }
            }
        },
    )
    [dm] = slack.dms(ADA)
    assert "now go to 'Home'" in dm["text"]
    destination = [c["name"] for c in actions.get_connection(rt, ada.conn_id)["calendars"] if c["destination"]]
    assert destination == ["Home"]


def test_calendars_opens_the_roles_modal_and_saving_it_sets_every_role_at_once(rt, ada, bolt, stub, slack):
    """Issue 18 in Slack: the primary, the calendars that block time and the others that get the
    appointments, as they are now; saved through the same action as the pages (choose_calendars)."""
    ada.server.make_calendar("home", "Home")
    assert slack.command("calendars", replies=0) == []
    modal = slack.opened_view()
    assert modal["callback_id"] == "calsync_calendars"
    fields = {b["block_id"]: b["element"] for b in modal["blocks"] if b["type"] == "input"}
    assert set(fields) == {"primary", "busy", "write"}
    ids = {o["text"]["text"]: o["value"] for o in fields["busy"]["options"]}
    assert set(ids) == {"Work", "Home"}
    assert fields["primary"]["initial_option"]["text"]["text"] == "Work"
    assert {o["text"]["text"] for o in fields["busy"]["initial_options"]} == {"Work", "Home"}, "both are Ada's own"
    assert "initial_options" not in fields["write"], "nothing but the primary is written yet"

    def option(name: str) -> dict:
        return {"text": {"type": "plain_text", "text": name}, "value": ids[name]}

    booked = ada.book(soon(2, 10), subject="Intro call")
    slack.submit(
        modal,
        values={
            "primary": {"choice": {"type": "static_select", "selected_option": option("Home")}},
            "busy": {"choice": {"type": "multi_static_select", "selected_options": [option("Home")]}},
            "write": {"choice": {"type": "multi_static_select", "selected_options": [option("Work")]}},
        },
    )
    [dm] = slack.dms(ADA)
    assert "Calendars of connection" in dm["text"] and "go to 'Home' and to 'Work'" in dm["text"], dm["text"]
    roles = {r["name"]: (r["primary"], r["busy"], r["write"]) for r in actions.calendar_roles(rt, ada.conn_id)}
    assert roles == {"Home": (True, True, True), "Work": (False, False, True)}
    assert [a.actor for a in audit_rows() if a.action in ("connection.calendar", "connection.primary")] == [f"slack:{ADA}"] * 2
    ada.sync()
    assert booked["uid"] in "".join(ada.events().values())

    # A choice that cannot be is refused whole, and said so.
    slack.submit(
        modal, values={"busy": {"choice": {"type": "multi_static_select", "selected_options": [{**option("Home"), "value": "999"}]}}}
    )
    _, refused = slack.dms(ADA, 2)
    assert refused["text"].startswith("Nothing was changed: no calendar '999'"), refused["text"]
    assert {r["name"]: r["busy"] for r in actions.calendar_roles(rt, ada.conn_id)} == {"Home": True, "Work": False}


# -- who may do what -----------------------------------------------------------------------------------


def test_a_staff_member_cannot_act_on_someone_elses_connection(rt, ada, radicale, bolt, stub, slack):
    bob_conn = add_bob(rt, radicale)
    refusal = "You can only act on your own calendar connections."
    for text in (
        f"test {bob_conn}",
        f"relink {bob_conn}",
        f"download {bob_conn}",
        f"stop {bob_conn}",
        f"status <@{BOB}|bob>",
        "feed bob@example.com",
        "status <mailto:bob@example.com|bob@example.com>",
    ):
        [reply] = slack.command(text)
        assert reply["text"] == refusal, text
    [clicked] = slack.action("calsync_test", value=str(bob_conn))
    assert clicked["text"] == refusal

    [support_only] = slack.command("support status")
    assert "for support users" in support_only["text"]

    assert stub.calls_to("views.open") == []
    bob = actions.get_connection(rt, bob_conn)
    assert bob["status"] == "pending" and bob["last_check_at"] is None
    assert m.RelinkLink.select().count() == 0 and m.DownloadLink.select().count() == 0
    assert audit_rows(f"slack:{ADA}") == []


def test_support_can_act_for_a_staff_member_and_is_audited_with_their_slack_id(rt, ada, radicale, bolt, stub, slack):
    bob_conn = add_bob(rt, radicale)

    [reply] = slack.command("status <mailto:ada@example.com|ada@example.com>", user=SUPPORT)
    assert "Ada Lovelace's calendar connections" in text_of(reply)

    _testing, result = slack.command(f"test <@{ADA}|ada>", user=SUPPORT, replies=2)
    assert result["response_type"] == "ephemeral" and f"Connection {ada.conn_id}" in text_of(result)
    assert "credentials" in text_of(result)

    [relink] = slack.command(f"relink {bob_conn}", user=SUPPORT)
    assert "/relink/" in relink["text"]

    [broken] = slack.command("support status", user=SUPPORT)
    assert f"*{bob_conn}.*" in text_of(broken), "Bob's pending connection needs attention"
    assert f"*{ada.conn_id}.*" not in text_of(broken)

    [mine] = slack.command("status", user=SUPPORT)  # support is not a staff member: say whose
    assert "name whose connections" in mine["text"]

    done = {(a.action, a.target) for a in audit_rows(f"slack:{SUPPORT}")}
    assert ("connection.test", str(ada.conn_id)) in done
    assert ("connection.relink_link", str(bob_conn)) in done


def test_an_unknown_slack_user_is_refused_politely_and_told_how_to_get_access(rt, ada, bolt, stub, slack):
    stub.add_user(EVE, "eve@example.com", "eve")  # in Slack, but not a calsync staff member
    for user in (STRANGER, EVE):
        [reply] = slack.command("status", user=user)
        assert reply["response_type"] == "ephemeral"
        assert "does not know you yet" in reply["text"] and "Ask support" in reply["text"], reply
        [clicked] = slack.action("calsync_test", user=user, value=str(ada.conn_id))
        assert "does not know you yet" in clicked["text"]
    [help_] = slack.command("help", user=STRANGER)
    assert "`/calsync status`" in text_of(help_), "help is for everyone"

    slack.event({"type": "app_home_opened", "user": STRANGER, "tab": "home"})
    stub.wait_for("views.publish", timeout=WAIT)
    assert "does not know you yet" in text_of(stub.home_view(STRANGER))
    assert audit_rows(f"slack:{STRANGER}") == [] and audit_rows(f"slack:{EVE}") == []


# -- Home tab and buttons ---------------------------------------------------------------------------------


def test_opening_the_home_tab_shows_the_connections_with_their_buttons(rt, ada, bolt, stub, slack):
    slack.event({"type": "app_home_opened", "user": ADA, "tab": "home", "view": {"id": "V0"}})
    [publish] = stub.wait_for("views.publish", timeout=WAIT)
    assert publish.params["user_id"] == ADA
    home = stub.home_view(ADA)
    said = text_of(home)
    assert "Your calendar connections" in said and ada.server.username in said and "Active" in said
    # A working connection: Test, and the rest behind "…" (no red Stop button on the row).
    assert [e["action_id"] for e in elements(home["blocks"])] == ["calsync_test", "calsync_more"]
    assert not [e for e in elements(home["blocks"]) if e.get("style") == "danger"]

    # Buttons on the Home tab have no response_url: the answer comes as a DM.
    on_home = {"id": home["id"], "type": "home"}
    slack.action("calsync_test", value=str(ada.conn_id), view=on_home, replies=0)
    [tested] = slack.dms(ADA)
    assert f"Connection {ada.conn_id}" in text_of(tested) and "✅ credentials" in text_of(tested)
    [menu] = [e for e in elements(home["blocks"]) if e["type"] == "overflow"]
    chosen = {o["value"].partition(":")[0]: o for o in menu["options"]}
    assert set(chosen) == {"relink", "calendars", "stop"}
    slack.action("calsync_more", view=on_home, replies=0, action={"type": "overflow", "selected_option": chosen["relink"]})
    _, relinked = slack.dms(ADA, 2)
    assert f"{rt.settings.base_url}/relink/" in text_of(relinked)
    slack.action("calsync_more", view=on_home, replies=0, action={"type": "overflow", "selected_option": chosen["calendars"]})
    assert slack.opened_view()["callback_id"] == "calsync_calendars"
    slack.action("calsync_more", view=on_home, replies=0, action={"type": "overflow", "selected_option": chosen["stop"]})
    assert slack.opened_view(2)["callback_id"] == "calsync_stop"
    assert ada.status()["status"] == "active"


def test_the_test_connection_button_answers_privately(rt, ada, bolt, slack):
    [reply] = slack.action("calsync_test", value=str(ada.conn_id))
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    said = text_of(reply)
    assert f"Connection {ada.conn_id}" in said and "✅ credentials" in said and "✅ write" in said
    assert actions.get_connection(rt, ada.conn_id)["last_check_at"] is not None


def test_an_alert_still_waiting_when_the_incident_resolves_is_not_sent_after_reconnected(rt, ada, bolt, stub):
    break_password(ada)
    stub.fail_next("chat.postMessage", "internal_error")
    assert outbox.deliver_pending(rt)["failed"] == 1  # Slack refused the alert; it waits in the outbox

    actions.update_credentials(rt, ada.conn_id, password=NEW_PASSWORD)
    assert ada.status()["status"] == "active"
    outbox.deliver_pending(rt)
    later = clock.now() + dt.timedelta(hours=2)
    clock.set_now(lambda: later)
    outbox.deliver_pending(rt)

    said = [text_of(msg) for msg in stub.messages(ADA)]
    assert len(said) == 1 and "Reconnected" in said[0], said
    assert m.Delivery.select().where(m.Delivery.state != m.DELIVERY_SENT).count() == 0


def test_a_relink_link_reissued_by_support_reaches_the_staff_member_by_dm(rt, ada, bolt, stub):
    break_password(ada)
    outbox.deliver_pending(rt)
    result = actions.issue_relink(rt, ada.conn_id, via=("slack",), actor="console:support")
    assert result["sent_via"] == ["slack"]
    outbox.deliver_pending(rt)
    _alert, reissued = stub.messages(ADA)
    [button] = elements(reissued["blocks"])
    assert button["text"]["text"] == "Relink" and button["url"] == result["url"]
    assert "earlier links no longer work" in text_of(reissued)
