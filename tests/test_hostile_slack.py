"""Hostile input in Slack: names, calendars, accounts and provider text stay literal text.

Through the real path of tests/test_slack_bot.py (its fixtures): signed
requests → Flask → Bolt → calsync's listeners → slack_sdk → the local Slack
stub; alerts through the outbox and ``SlackSender``. Every check ends by
walking *everything* the bot sent to the stub (messages, replies, modals,
Home tabs): a new message that forgets the escaping fails here too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from pathlib import Path

import pytest
from fakes.slack_api import block_action_body, sign, slash_command_body
from test_slack_bot import (  # noqa: F401 - fixtures, found by pytest under these names
    ADA,
    BOB,
    SIGNING_SECRET,
    SUPPORT,
    WAIT,
    audit_rows,
    bolt,
    elements,
    rt,
    slack,
    stub,
    web,
)

import models as m
from bot.mrkdwn import PLAIN_LIMITS
from core import actions, clock, incidents, lifecycle, outbox
from core.providers.base import WriteForbidden

EVE = "UEVE00001"
MENTION, LINK = "<!channel>", "<https://evil.example/|click>"
STAFF_NAME = f"Ada {MENTION} {LINK} & Co"
STAFF_EMAIL = "ada<!here>&x@example.com"  # the core accepts it: no space, one @
CALENDAR = f"Work {MENTION} {LINK} R&D"
ACCOUNT = f"ada{LINK}&{MENTION}"
REASON = f"the server said {MENTION} {LINK} & <b>no</b>"
HOSTILE = (MENTION, LINK, "<https://evil", "<b>")
# The bot's own date token (bot/blocks._when): its fallback is a time and a zone label ("… UTC",
# "… CET (Europe/Berlin)"), nothing a name or a provider wrote.
BOT_TOKEN = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d[ A-Za-z0-9()/_+-]*>")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = ("views.open", "views.push", "views.update", "views.publish")


# -- what Slack would render -------------------------------------------------------------------------


def escaped(raw: str) -> str:
    """``raw`` as Slack's docs say to send it in mrkdwn: exactly &, < and > escaped."""
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def texts(node, mrkdwn: list, plain: list, where: str = "") -> None:
    """Collect every mrkdwn and plain_text string in a payload (a message's ``text`` is mrkdwn)."""
    if isinstance(node, list):
        for item in node:
            texts(item, mrkdwn, plain, where)
    elif isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            mrkdwn.append(node.get("text", ""))
        elif node.get("type") == "plain_text":
            plain.append((where, node.get("text", "")))
        else:
            kind = node.get("type")
            here = kind if isinstance(kind, str) else ("option" if "value" in node else where)
            for key, value in node.items():
                texts(value, mrkdwn, plain, key if key in PLAIN_LIMITS else here)


def sent(stub) -> list[dict]:
    """Everything the bot sent: Web API message and view calls, and answers to response_urls."""
    found = [{"text": c.params.get("text", ""), "blocks": c.params.get("blocks") or []} for c in stub.calls if c.method in MESSAGE_METHODS]
    found += [{"view": c.params.get("view")} for c in stub.calls if c.method in VIEW_METHODS]
    found += [{"text": p.get("text", ""), "blocks": p.get("blocks") or []} for _, p in stub.response_urls if isinstance(p, dict)]
    return found


def assert_literal(stub, *expect_escaped: str) -> str:
    """No mrkdwn the bot sent holds a ``<`` that is not its own date token, nothing is escaped twice, plain_text
    is never escaped and within Slack's limits; each of ``expect_escaped`` shows (escaped). Returns all mrkdwn."""
    mrkdwn: list[str] = []
    plain: list[tuple[str, str]] = []
    for payload in sent(stub):
        if "text" in payload:
            mrkdwn.append(payload["text"])
        texts({k: v for k, v in payload.items() if k != "text"}, mrkdwn, plain)
    assert mrkdwn, "the bot sent nothing"
    for text in mrkdwn:
        bare = BOT_TOKEN.sub("", text)
        assert "<" not in bare and ">" not in bare, f"unescaped markup in {text!r}"
        assert not re.search(r"&(?!amp;|lt;|gt;)", bare), f"unescaped & in {text!r}"
        assert not re.search(r"&amp;(amp|lt|gt);", text), f"escaped twice: {text!r}"
    for where, text in plain:
        assert "&lt;" not in text and "&amp;" not in text, f"plain_text must not be escaped: {text!r}"
        assert len(text) <= PLAIN_LIMITS.get(where, 3000), (where, text)
    said = "\n".join(mrkdwn)
    for raw in expect_escaped:
        assert escaped(raw) in said, f"{raw!r} should show as literal text"
    return said


# -- the hostile staff member -------------------------------------------------------------------------


@pytest.fixture
def evil(rt, radicale):
    """Ada, with a hostile name and e-mail, syncing to a calendar with a hostile name."""
    radicale.make_calendar("evil", CALENDAR)
    actions.add_staff(rt, STAFF_EMAIL, STAFF_NAME, slack_id=ADA)
    conn = actions.connect(
        rt, STAFF_EMAIL, "caldav", url=radicale.base_url, username=radicale.username, password=radicale.password, calendar=CALENDAR
    )
    actions.sync_now(rt, conn["id"])
    assert actions.get_connection(rt, conn["id"])["status"] == "active"
    return conn["id"]


def typed_account(conn_id: int) -> None:
    """The account as the user typed it on the connect page (calsync logs in with it: later logins fail)."""
    m.Connection.update(account=ACCOUNT).where(m.Connection.id == conn_id).execute()


def provider_says(rt, conn_id: int, reason: str = REASON) -> None:
    """The provider refuses writes with a text of its own: the connection turns read-only with that reason."""
    typed_account(conn_id)
    lifecycle.failed(rt, m.Connection.get_by_id(conn_id), WriteForbidden(reason, answer=f"HTTP 403 {reason}"), "sync")


def test_status_shows_hostile_names_calendars_accounts_and_reasons_as_literal_text(rt, evil, bolt, stub, slack):
    typed_account(evil)
    slack.command("status")
    said = assert_literal(stub, CALENDAR, ACCOUNT)
    assert f"Appointments go to *{escaped(CALENDAR)}*" in said

    provider_says(rt, evil)
    [broken] = slack.command("support status", user=SUPPORT)
    assert broken["text"] == "Connections that need attention"
    assert_literal(stub, CALENDAR, ACCOUNT, REASON)


def test_support_naming_a_hostile_staff_member_sees_their_name_literally(rt, evil, bolt, stub, slack):
    provider_says(rt, evil)
    [reply] = slack.command(f"status <@{ADA}|ada>", user=SUPPORT)
    assert reply["text"] == escaped(f"{STAFF_NAME}'s calendar connections")
    assert_literal(stub, f"{STAFF_NAME}'s calendar connections", REASON, ACCOUNT)


def test_what_the_user_typed_is_quoted_back_escaped_once(rt, evil, bolt, stub, slack):
    """Slack sends ``&``, ``<`` and ``>`` typed by the user as entities: they are not escaped a second time."""
    [unknown] = slack.command("frob&lt;b&gt;&amp;")
    assert unknown["text"] == "I don't know `frob&lt;b&gt;&amp;`. `/calsync help` lists what I can do."
    [named] = slack.command("status ada&lt;!here&gt;&amp;x@example.com", user=SUPPORT)  # STAFF_EMAIL, as Slack sends it
    assert named["text"] == escaped(f"{STAFF_NAME}'s calendar connections")
    [link] = slack.command("<https://evil.example/|click>")  # a link the user typed: Slack's own token
    assert link["text"].startswith("I don't know `&lt;https://evil.example/|click&gt;`")
    assert_literal(stub)


def test_the_feed_dm_and_reply_show_a_hostile_name_literally(rt, evil, bolt, stub, slack):
    slack.command("feed")
    slack.command("feed reset", replies=0)
    slack.submit(slack.opened_view())
    slack.dms(ADA)
    assert_literal(stub, f"Private calendar feed of {STAFF_NAME}", f"New private feed URL of {STAFF_NAME}")


def test_app_home_shows_hostile_strings_as_literal_text(rt, evil, bolt, stub, slack):
    provider_says(rt, evil)
    slack.event({"type": "app_home_opened", "user": ADA, "tab": "home"})
    stub.wait_for("views.publish", timeout=WAIT)
    assert stub.home_view(ADA) is not None
    assert_literal(stub, CALENDAR, ACCOUNT, REASON)


def test_the_alert_dm_and_the_support_escalation_show_hostile_strings_as_literal_text(rt, evil, bolt, stub):
    provider_says(rt, evil)
    outbox.deliver_pending(rt)
    [alert] = stub.messages(ADA)
    [header] = [b for b in alert["blocks"] if b["type"] == "header"]
    assert header["text"]["type"] == "plain_text" and MENTION in header["text"]["text"], "plain_text is shown as is"
    assert_literal(stub, REASON, ACCOUNT)

    later = clock.now() + dt.timedelta(seconds=rt.settings.escalate_after + 60)
    clock.set_now(lambda: later)
    assert incidents.check(rt)["escalations"] == 1
    outbox.deliver_pending(rt)
    [escalation] = stub.messages("C_SUPPORT")
    assert "Support needed" in escalation["text"]
    assert_literal(stub, REASON, ACCOUNT, STAFF_EMAIL)


def test_the_modals_and_the_test_button_show_hostile_text_literally(rt, evil, bolt, stub, slack):
    slack.command(f"primary {evil}", replies=0)
    modal = slack.opened_view()
    [picker] = [b["element"] for b in modal["blocks"] if b["type"] == "input"]
    [option] = [o for o in picker["options"] if o["text"]["text"] == CALENDAR]  # plain_text: the name as it is
    slack.submit(modal, values={"calendar": {"choice": {"type": "static_select", "selected_option": option}}})
    [chosen] = slack.dms(ADA)
    assert escaped(f"now go to {CALENDAR!r}") in chosen["text"]
    slack.command(f"stop {evil}", replies=0)
    slack.opened_view(2)

    provider_says(rt, evil)
    slack.action("calsync_test", value=str(evil))  # the real test: it logs in with the typed account
    assert "Provider's answer" in assert_literal(stub)


def test_a_long_hostile_calendar_name_is_clipped_in_plain_text_and_escaped_in_mrkdwn(rt, evil, radicale, bolt, stub, slack):
    long_name = (f"{MENTION} & " * 30).strip()
    radicale.make_calendar("long", long_name)
    slack.command(f"primary {evil}", replies=0)
    modal = slack.opened_view()
    [picker] = [b["element"] for b in modal["blocks"] if b["type"] == "input"]
    [option] = [o["text"]["text"] for o in picker["options"] if o["text"]["text"].startswith(MENTION)]
    assert len(option) == 75 and option.endswith("…")

    m.Calendar.update(is_destination=False, is_primary=False).where(m.Calendar.connection == evil).execute()
    m.Calendar.update(is_destination=True, is_primary=True).where(m.Calendar.connection == evil, m.Calendar.name == long_name).execute()
    slack.command("status")
    assert_literal(stub)  # every text within its limit; no entity cut in half


# -- identity -----------------------------------------------------------------------------------------


def bob_with_a_connection(rt, radicale) -> int:
    radicale.make_calendar("home", "Home")
    actions.add_staff(rt, "bob@example.com", "Bob Babbage", slack_id=BOB)
    return actions.connect(
        rt, "bob@example.com", "caldav", url=radicale.base_url, username=radicale.username, password=radicale.password, calendar="Home"
    )["id"]


def test_a_slack_user_with_another_staff_members_e_mail_is_not_that_staff_member(rt, radicale, bolt, stub, slack):
    bob_conn = bob_with_a_connection(rt, radicale)
    stub.add_user(EVE, "bob@example.com", "eve")  # Eve put Bob's e-mail in her Slack profile

    [status] = slack.command("status", user=EVE)
    assert "does not know you yet" in status["text"]
    for text in (f"test {bob_conn}", f"relink {bob_conn}", "feed", f"stop {bob_conn}"):
        [reply] = slack.command(text, user=EVE)
        assert "does not know you yet" in reply["text"], text
    [clicked] = slack.action("calsync_test", user=EVE, value=str(bob_conn))
    assert "does not know you yet" in clicked["text"]
    slack.event({"type": "app_home_opened", "user": EVE, "tab": "home"})
    stub.wait_for("views.publish", timeout=WAIT)
    assert "Bob" not in str(stub.home_view(EVE)) and "Home" not in str(stub.home_view(EVE)["blocks"])

    assert m.Staff.get(m.Staff.email == "bob@example.com").slack_id == BOB, "Bob stays linked to Bob"
    assert stub.calls_to("views.open") == [] and m.RelinkLink.select().count() == 0
    assert actions.get_connection(rt, bob_conn)["last_check_at"] is None
    assert audit_rows(f"slack:{EVE}") == []
    [real_bob] = slack.command("status", user=BOB)
    assert "Your calendar connections" in real_bob["text"]


def test_an_alert_is_not_dmed_to_a_slack_user_who_is_already_another_staff_member(rt, radicale, bolt, stub):
    bob_with_a_connection(rt, radicale)
    actions.add_staff(rt, "carol@example.com", "Carol")  # no Slack id yet
    stub.add_user(BOB, "carol@example.com", "bob")  # the Slack user holding Carol's e-mail is Bob
    radicale.make_calendar("carol", "Carol")
    carol = actions.connect(
        rt, "carol@example.com", "caldav", url=radicale.base_url, username=radicale.username, password=radicale.password, calendar="Carol"
    )["id"]
    actions.sync_now(rt, carol)
    provider_says(rt, carol, "the CalDAV server does not let this account create or change events")

    outbox.deliver_pending(rt)
    assert stub.messages(BOB) == [], "Carol's relink link must not reach Bob"
    [waiting] = m.Delivery.select().where(m.Delivery.channel == "slack")
    assert "linked to another staff member" in waiting.last_error
    assert m.Staff.get(m.Staff.email == "carol@example.com").slack_id is None


def test_an_unlinked_staff_member_is_still_found_by_e_mail_on_first_contact(rt, radicale, bolt, stub, slack):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace")
    [reply] = slack.command("status")
    assert "Your calendar connections" in reply["text"]
    assert m.Staff.get(m.Staff.email == "ada@example.com").slack_id == ADA


def test_a_slack_id_that_looks_like_an_e_mail_does_not_stand_in_for_that_person(rt, radicale, bolt, stub, slack):
    bob_with_a_connection(rt, radicale)
    actions.add_staff(rt, "mallory@example.com", "Mallory")
    # A bad --slack-id stored before calsync checked their shape (an old database).
    m.Staff.update(slack_id="bob@example.com").where(m.Staff.email == "mallory@example.com").execute()
    [reply] = slack.command("status bob@example.com", user=SUPPORT)
    assert "Bob Babbage's calendar connections" in reply["text"]


# -- malformed signature headers ------------------------------------------------------------------------


MALFORMED = {
    "letters": "abc",
    "empty": "",
    "blank": " ",
    "5000 digits": "9" * 5000,
    "float": "1e9",
    "arabic digits": "١٧٠٠٠٠٠٠٠٠",
    "underscores": "1_700_000_000",
    "negative": "-1",
    "huge": str(2**70),
}


@pytest.mark.parametrize("timestamp", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_timestamp_is_a_401_like_a_bad_signature_and_nothing_runs(rt, bolt, stub, slack, caplog, timestamp):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", slack_id=ADA)
    _, url = slack.new_response_url()
    body = slash_command_body(text="status", user_id=ADA, response_url=url)
    headers = {**sign(SIGNING_SECRET, body), "X-Slack-Request-Timestamp": timestamp}
    with caplog.at_level(logging.DEBUG):
        answer = slack.post(body, headers=headers)
    assert answer.status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], "no traceback"
    time.sleep(0.3)
    assert stub.calls == [] and stub.response_urls == []


def test_a_missing_timestamp_or_a_non_ascii_signature_is_a_401(rt, bolt, stub, slack, caplog):
    key, url = slack.new_response_url()
    body = block_action_body("calsync_test", value="1", user_id=ADA, response_url=url)
    signed = sign(SIGNING_SECRET, body)
    with caplog.at_level(logging.DEBUG):
        missing = slack.post(body, headers={"X-Slack-Signature": signed["X-Slack-Signature"]})
        non_ascii = slack.post(body, headers={**signed, "X-Slack-Signature": "v0=é" + "0" * 63})
    assert (missing.status_code, non_ascii.status_code) == (401, 401)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert slack.post(body).status_code == 200, "the same request, signed right, still works"
    assert "does not know you yet" in slack.replies(key)[0]["text"]  # answered before the stub stops


# -- the rule itself --------------------------------------------------------------------------------------


def test_every_message_the_bot_sends_goes_through_the_sealing_gate():
    """Only bot/out.py calls respond or the Web API's message and view methods: it escapes them all."""
    bot = Path(__file__).resolve().parent.parent / "bot"
    direct = re.compile(r"\b(respond|say)\(|\.(chat_\w+|views_\w+)\(")
    offenders = [
        f"{path.relative_to(bot)}:{n}: {line.strip()}"
        for path in sorted(bot.rglob("*.py"))
        if path.name != "out.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []
