"""The lifecycle as a staff member meets it in Slack: alerts from any process, one live link per
incident, "failing" before "unreachable", "reconnected — N delivered" with N true.

Signed requests go to the real ``/slack/events``; answers come back from the local Slack Web API
stub; CalDAV is a real Radicale on loopback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import requests
from conftest import ROOT, make_env, soon
from test_slack_bot import (  # noqa: F401 (fixtures)
    ADA,
    BOB,
    NEW_PASSWORD,
    SIGNING_SECRET,
    SUPPORT,
    ada,
    add_bob,
    bolt,
    break_password,
    elements,
    rt,
    slack,
    stub,
    text_of,
    web,
    web_server,
)

import models as m
from core import actions, clock, incidents, outbox


def relink_button(message: dict) -> str:
    (url,) = [e["url"] for e in elements(message["blocks"]) if e.get("action_id") == "calsync_relink_open"]
    return url


def test_a_break_found_by_the_cli_reaches_the_dm_on_the_services_next_pass(tmp_path, stub, radicale):
    """`run_console.py sync` finds the break; `run_bot.py --once` (the service) sends the Slack DM."""
    radicale.make_calendar("work", "Work")
    env = {**os.environ, **make_env(tmp_path, SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=stub.url)}

    def run(script, *args, stdin=""):
        return subprocess.run(
            [sys.executable, str(ROOT / script), *args], input=stdin, capture_output=True, text=True, env=env, timeout=90, check=False
        )

    assert run("run_console.py", "staff", "add", "ada@example.com", "--name", "Ada", "--slack-id", ADA).returncode == 0
    assert (
        run(
            "run_console.py",
            "connect",
            "caldav",
            "--staff",
            "ada@example.com",
            "--url",
            radicale.base_url,
            "--username",
            radicale.username,
            stdin=radicale.password + "\n",
        ).returncode
        == 0
    )
    radicale.set_password(NEW_PASSWORD)
    assert run("run_console.py", "sync", "1").returncode == 1
    assert stub.messages(ADA) == [], "the CLI leaves Slack to the service"
    once = run("run_bot.py", "--once")
    assert once.returncode == 0, once.stderr
    assert "2 notification(s) delivered" in once.stdout  # the log and the Slack DM
    (alert,) = stub.messages(ADA)
    assert alert["text"] == "Your CalDAV calendar needs your new password", "what broke, in the notification"
    assert "/relink/" in relink_button(alert)


def test_reminders_reuse_the_live_link_and_a_reissue_redraws_the_alert(rt, ada, bolt, stub, web_server):
    break_password(ada)
    outbox.deliver_pending(rt)
    (alert,) = stub.messages(ADA)
    first_link = relink_button(alert)
    later = clock.now() + dt.timedelta(seconds=rt.settings.reminder_interval + 60)
    clock.set_now(lambda: later)
    assert incidents.check(rt)["reminders"] == 1
    outbox.deliver_pending(rt)
    alert, reminder = stub.messages(ADA)
    assert "Reminder" in text_of(reminder)
    assert relink_button(reminder) == first_link, "a reminder carries the same live link"
    assert requests.get(first_link, timeout=10).status_code == 200, "the first message's button still works"

    reissued = actions.issue_relink(rt, ada.conn_id, via=("slack",), actor="sam")
    outbox.deliver_pending(rt)
    messages = stub.messages(ADA)
    assert [relink_button(msg) for msg in messages[:2]] == [reissued["url"]] * 2, (
        "the earlier alerts are redrawn in place with the new button"
    )
    assert requests.get(first_link, timeout=10).status_code == 410
    assert requests.get(reissued["url"], timeout=10).status_code == 200


def test_failing_before_unreachable_shows_in_slack_status_and_app_home(rt, ada, slack, stub):
    ada.server.stop()
    for _ in range(2):
        ada.sync()
    (reply,) = slack.command("status")
    said = text_of(reply)
    assert "Active, failing" in said and "failing since" in said and "the last 2 attempts failed" in said
    slack.event({"type": "app_home_opened", "user": ADA, "tab": "home"})
    stub.wait_for("views.publish")
    assert "failing since" in json.dumps(stub.home_view(ADA))
    assert m.Incident.select().count() == 0, "quiet failures alert nobody before the threshold"


def test_the_test_button_repairs_and_the_alert_says_how_many_were_delivered(rt, ada, slack, stub):
    good = ada.server.password
    ada.book(soon(3), subject="Booked meanwhile 2")
    break_password(ada, subject="Booked meanwhile 1")
    outbox.deliver_pending(rt)
    (alert,) = stub.messages(ADA)
    said = text_of(alert)
    assert alert["text"] == "Your CalDAV calendar needs your new password — 2 appointments are waiting"
    assert "*Waiting to be added to your calendar (2):*" in said
    assert said.index("Booked meanwhile 1") < said.index("Booked meanwhile 2"), "listed by start"
    ada.server.set_password(good)
    (answer,) = slack.action("calsync_test", value=str(ada.conn_id))
    assert "Active" in text_of(answer)
    outbox.deliver_pending(rt)
    (message,) = stub.messages(ADA)
    assert "Reconnected" in text_of(message) and "2 missed appointment(s) delivered" in text_of(message)
    for subject in ("Booked meanwhile 1", "Booked meanwhile 2"):
        assert sum(subject in data for data in ada.events().values()) == 1


def test_a_staff_member_never_sees_who_else_shares_the_account(rt, ada, slack, stub, radicale):
    add_bob(rt, radicale)  # Bob syncs the same CalDAV account
    (reply,) = slack.command("status")
    assert "bob@example.com" not in text_of(reply)
    slack.command(f"stop {ada.conn_id}", replies=0)
    view = slack.opened_view()
    assert "bob@example.com" not in text_of(view) and "1 other staff member syncs" in text_of(view)
    slack.command(f"stop {ada.conn_id} <@{ADA}>", user=SUPPORT, replies=0, trigger_id="t2")
    assert "bob@example.com" in text_of(slack.opened_view(2)), "support sees who shares it"
