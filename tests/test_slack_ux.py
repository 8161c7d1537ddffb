"""What a staff member and support read in Slack (issue 14): the Block Kit JSON the local Slack stub receives.

The real path of tests/test_slack_bot.py (its fixtures): signed requests → Flask → Bolt → calsync's
listeners → slack_sdk → the stub, which refuses Block Kit over Slack's limits; alerts through the
outbox and ``SlackSender``; CalDAV is a real Radicale on loopback.
"""

from __future__ import annotations

import json
import re

from conftest import soon
from test_slack_bot import (  # noqa: F401 (fixtures)
    ADA,
    BOB,
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
)

import models as m
from core import actions, lifecycle, outbox
from core.providers.base import WriteForbidden


def home_of(slack, stub, user: str = ADA) -> dict:
    before = len(stub.calls_to("views.publish"))
    slack.event({"type": "app_home_opened", "user": user, "tab": "home"})
    stub.wait_for("views.publish", before + 1, timeout=10)
    return stub.home_view(user)


def row_elements(home: dict, conn_id: int) -> list[dict]:
    [row] = [b for b in home["blocks"] if b.get("block_id") == f"calsync_row_{conn_id}"]
    return row["elements"]


def make_read_only(rt, conn_id: int) -> None:
    """The provider refuses writes to the primary calendar: the connection turns read_only."""
    lifecycle.failed(rt, m.Connection.get_by_id(conn_id), WriteForbidden("the server refused writes (HTTP 403)"), "sync")
    assert actions.get_connection(rt, conn_id)["status"] == "read_only"


def test_the_alert_says_what_broke_and_what_waits_and_lists_the_first_five_in_the_staff_members_zone(rt, ada, bolt, stub):
    for n in range(1, 6):
        ada.book(soon(3 + n), subject=f"Waiting {n}")
    break_password(ada, subject="Waiting 0")  # 6 appointments wait
    outbox.deliver_pending(rt)
    [alert] = stub.messages(ADA)
    headline = "Your CalDAV calendar needs your new password — 6 appointments are waiting"
    assert alert["text"] == headline, "the phone's notification says what broke and what waits"
    header, todo, waiting = alert["blocks"][:3]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": headline}}
    assert todo["text"]["text"].startswith("Enter your current CalDAV password")
    listed = waiting["text"]["text"].split("\n")
    assert listed[0] == "*Waiting to be added to your calendar (6):*" and listed[-1] == "+1 more"
    assert [re.sub(r".* — ", "", line) for line in listed[1:-1]] == [f"Waiting {n}" for n in range(5)]
    # Slack shows each time in the reader's zone; the fallback is Ada's zone, labelled.
    assert all(
        re.match(r"• <!date\^\d+\^\{date_short_pretty\} \{time\}\|\S+ \S+ CES?T \(Europe/Berlin\)> — ", line) for line in listed[1:-1]
    ), listed
    said = text_of(alert)
    assert said.count("rejected the username or password") == 1, "the reason is said once"
    assert "rejected our credentials" not in said and "waiting: " not in said.lower()


def test_a_read_only_alert_and_the_home_tab_offer_the_calendar_picker_without_the_read_only_calendar(rt, ada, bolt, stub, slack):
    ada.server.make_calendar("home", "Home")
    make_read_only(rt, ada.conn_id)
    outbox.deliver_pending(rt)
    [alert] = stub.messages(ADA)
    assert alert["text"] == "Calsync can no longer add appointments to 'Work' — it became read-only"
    assert "Waiting to be added" not in text_of(alert), "nothing waits: no waiting list, no 'waiting: 0'"
    [picker] = [e for e in elements(alert["blocks"]) if e["type"] == "static_select"]
    assert picker["action_id"] == "calsync_primary_select"
    assert [o["text"]["text"] for o in picker["options"]] == ["Home"]

    home = home_of(slack, stub)
    [on_home] = [e for e in row_elements(home, ada.conn_id) if e["type"] == "static_select"]
    assert [o["text"]["text"] for o in on_home["options"]] == ["Home"]
    slack.action(
        "calsync_primary_select",
        view={"id": home["id"], "type": "home"},
        replies=0,
        action={"type": "static_select", "selected_option": on_home["options"][0]},
    )
    _, dm = slack.dms(ADA, 2)  # after the alert
    assert "now go to 'Home'" in dm["text"] and "Synced at once" in dm["text"]
    assert ada.status()["status"] == "active"


def test_support_status_groups_broken_connections_by_status_and_names_each_staff_member(rt, ada, radicale, bolt, stub, slack):
    bob_conn = add_bob(rt, radicale)  # pending: never synced
    break_password(ada)
    [reply] = slack.command("support status", user=SUPPORT)
    headers = [b["text"]["text"] for b in reply["blocks"] if b["type"] == "header"]
    assert headers == ["🔴 Relink required (1)", "🟡 Pending (1)"], "the worst first"
    rows = [b["text"]["text"] for b in reply["blocks"] if b["type"] == "section"][1:]
    assert rows[0].startswith(f"*{ada.conn_id}.*") and "\nAda Lovelace (ada@example.com)\n" in rows[0]
    assert rows[1].startswith(f"*{bob_conn}.*") and "\nBob Babbage (bob@example.com)\n" in rows[1]
    assert "1 appointment is waiting" in rows[0]


def test_app_home_offers_what_each_status_needs(rt, ada, radicale, bolt, stub, slack, web):
    home = home_of(slack, stub)
    [working] = [row_elements(home, ada.conn_id)]
    assert [e["action_id"] for e in working] == ["calsync_test", "calsync_more"], "no Stop button on a working row"
    feed = [b["text"]["text"] for b in home["blocks"] if b["type"] == "section" and "private calendar feed" in b["text"]["text"]]
    url = actions.feed_url(rt, "ada@example.com")["url"]
    assert feed and url in feed[0] and f"`{url.replace('http://', 'webcal://')}`" in feed[0]
    assert "To subscribe" in text_of(home)

    break_password(ada)
    home = home_of(slack, stub)
    broken = row_elements(home, ada.conn_id)
    assert [(e["action_id"], e.get("style")) for e in broken] == [
        ("calsync_relink", "primary"),
        ("calsync_download", None),
        ("calsync_more", None),
    ]
    on_home = {"id": home["id"], "type": "home"}
    slack.action("calsync_download", value=str(ada.conn_id), view=on_home, replies=0)
    [download] = slack.dms(ADA)
    [link] = elements(download["blocks"])
    assert web.get(link["url"][len(rt.settings.base_url) :]).status_code == 200

    actions.stop_sync(rt, ada.conn_id, force=True)
    stopped = row_elements(home_of(slack, stub), ada.conn_id)
    assert [(e["action_id"], e["text"]["text"]) for e in stopped] == [
        ("calsync_connect", "Connect again"),
        ("calsync_download", "Download missed (.ics)"),
    ]
    slack.action("calsync_connect", value=str(ada.conn_id), view=on_home, replies=0)
    _, connect = slack.dms(ADA, 2)
    assert elements(connect["blocks"])[0]["url"].startswith(f"{rt.settings.base_url}/connect/")

    actions.add_staff(rt, "bob@example.com", "Bob Babbage", slack_id=BOB)  # no connection yet
    [connect_button] = elements(home_of(slack, stub, BOB)["blocks"])
    assert (connect_button["action_id"], connect_button["text"]["text"]) == ("calsync_connect", "Connect a calendar")
    assert not [e for e in stub.calls_to("views.publish") if '"danger"' in json.dumps(e.params["view"])]


def test_primary_syncs_at_once_and_says_what_it_wrote(rt, ada, bolt, stub, slack):
    home_url = ada.server.make_calendar("home", "Home")
    ada.server.delete_calendar(ada.calendar_url)
    ada.book(soon(), subject="Waiting for a calendar")
    ada.sync()
    assert ada.status()["status"] == "calendar_missing"
    assert slack.command("primary", replies=0) == []
    modal = slack.opened_view()
    [picker] = [b["element"] for b in modal["blocks"] if b["type"] == "input"]
    assert [o["text"]["text"] for o in picker["options"]] == ["Home"], "never the deleted calendar"
    slack.submit(modal, values={"calendar": {"choice": {"type": "static_select", "selected_option": picker["options"][0]}}})
    [dm] = slack.dms(ADA)
    assert dm["text"] == (
        f"Appointments of connection {ada.conn_id} now go to 'Home'. Synced at once: 1 appointment(s) written. Status: 🟢 Active."
    )
    assert "Waiting for a calendar" in "".join(ada.server.list_events(home_url).values())


def test_the_stop_modal_says_in_sentences_what_happens_and_its_button_says_what_it_does(rt, ada, bolt, stub, slack):
    ada.book(soon(), subject="On the calendar")
    ada.sync()
    slack.command(f"stop {ada.conn_id}", replies=0)
    modal = slack.opened_view()
    assert modal["submit"]["text"] == "Stop and remove 1 event"
    # Ticking "keep" redraws the modal: the button follows the choice.
    [box] = [b for b in modal["blocks"] if b["type"] == "input"]
    assert box["dispatch_action"] is True
    slack.action(
        box["element"]["action_id"],
        replies=0,
        action={"type": "checkboxes", "selected_options": box["element"]["options"]},
        view={"id": modal["id"], "hash": modal["hash"], "type": "modal", "private_metadata": modal["private_metadata"]},
    )
    [update] = stub.wait_for("views.update", timeout=10)
    kept = update.response["view"]
    assert kept["submit"]["text"] == "Stop and keep 1 event" and "stays on the calendar" in text_of(kept)

    break_password(ada, subject="Waiting meanwhile")  # broken, with an appointment waiting
    slack.command(f"stop {ada.conn_id}", replies=0, trigger_id="t2")
    modal = slack.opened_view(2)
    said = text_of(modal)
    assert modal["submit"]["text"] == "Stop anyway"
    assert all(s in said for s in actions.stop_plan(rt, ada.conn_id, for_support=False)["sentences"])
    assert "--force" not in said and "relink_required" not in said and "event(s)" not in said
    slack.submit(modal)  # "Stop anyway" is the consent: nothing more to tick
    [done] = slack.dms(ADA)
    assert done["text"].startswith(f"Sync of connection {ada.conn_id} stopped.")
    assert f"1 appointment that waited never reached the calendar; `/calsync download {ada.conn_id}`" in done["text"]
    assert ada.status()["status"] == "stopped"
