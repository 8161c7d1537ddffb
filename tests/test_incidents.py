"""Incidents and notifications: one per break, reminders on time, e-mail through real SMTP."""

from __future__ import annotations

import datetime as dt

from conftest import Story, soon

import models as m
from core import actions, clock, incidents, outbox


def test_twenty_failed_runs_make_one_incident_and_one_notification(story):
    story.sync()
    story.server.set_password("changed-1")
    for _ in range(20):
        story.sync()
    (incident,) = m.Incident.select()
    assert incident.kind == "relink_required" and incident.resolved_at is None
    assert incident.failures == 20
    (notification,) = m.Notification.select()
    assert notification.event == "incident.opened"


def test_relink_e_mail_arrives_through_smtp_and_names_its_sender(mail_rt, caldav, mailbox):
    story = Story(mail_rt, caldav)
    story.sync()
    story.book(soon(), subject="Booked meanwhile")
    caldav.set_password("changed-1")
    story.sync()
    result = outbox.deliver_pending(mail_rt)
    assert result == {"sent": 2, "failed": 0}  # the log and the e-mail
    (mail,) = mailbox.wait_for(1)
    assert mail["To"] == "ada@example.com"
    assert "calsync@example.com" in mail["From"]
    body = mail.get_body(("plain",)).get_content()
    assert mail["Subject"] == "Your CalDAV calendar needs your new password — 1 appointment is waiting"
    assert "1 appointment is waiting" in body and "Booked meanwhile" in body  # what waits, by name and time
    assert body.count("rejected") <= 1  # the provider's reason is said once
    assert "allow-list" in body and "calsync@example.com" in body
    assert f"{mail_rt.settings.base_url}/relink/" in body
    # Delivered once: the URL is wiped from the outbox, a second pass sends nothing.
    assert m.Notification.get().secret == ""
    assert outbox.deliver_pending(mail_rt) == {"sent": 0, "failed": 0}
    assert len(mailbox.messages) == 1


def test_a_failed_delivery_is_kept_and_retried_later(mail_rt, caldav, mailbox):
    story = Story(mail_rt, caldav)
    story.sync()
    caldav.set_password("changed-1")
    story.sync()
    mailbox.stop()
    assert outbox.deliver_pending(mail_rt)["failed"] == 1
    email_delivery = m.Delivery.get(m.Delivery.channel == "email")
    assert email_delivery.state == "pending" and email_delivery.attempts == 1 and email_delivery.last_error
    mailbox.start()
    assert outbox.deliver_pending(mail_rt) == {"sent": 0, "failed": 0}  # not due yet: backoff
    later = clock.now() + dt.timedelta(minutes=5)
    clock.set_now(lambda: later)
    assert outbox.deliver_pending(mail_rt) == {"sent": 1, "failed": 0}
    assert len(mailbox.wait_for(1)) == 1


def test_reminders_come_at_most_once_per_period(story):
    story.sync()
    story.server.set_password("changed-1")
    story.sync()
    start = clock.now()
    for hours, expected in ((1, 0), (23, 0), (24, 1), (30, 1), (48, 2)):
        moment = start + dt.timedelta(hours=hours, seconds=1)
        clock.set_now(lambda moment=moment: moment)
        incidents.check(story.rt)
        reminders = m.Notification.select().where(m.Notification.event == "incident.reminder").count()
        assert reminders == expected, (hours, reminders)


def test_return_to_active_resolves_the_incident_and_counts_the_delivered(story):
    story.sync()
    story.server.set_password("changed-1")
    story.sync()
    story.book(soon(), subject="Booked meanwhile")
    story.book(soon(3), subject="Also booked meanwhile")
    story.sync()
    actions.update_credentials(story.rt, story.conn_id, password="changed-1")
    (incident,) = m.Incident.select()
    assert incident.resolved_at is not None and incident.missed_delivered == 2
    resolved = m.Notification.get(m.Notification.event == "incident.resolved")
    assert '"delivered": 2' in resolved.payload
    assert len(story.events()) == 2


def test_transient_failures_open_no_incident_until_unreachable(story):
    story.sync()
    story.server.stop()
    for _ in range(3):
        story.sync()
    assert m.Incident.select().count() == 0
    later = clock.now() + dt.timedelta(hours=6, minutes=1)
    clock.set_now(lambda: later)
    story.sync()
    (incident,) = m.Incident.select()
    assert incident.kind == "unreachable"


def test_pending_for_a_day_escalates_to_support_once(rt, caldav):
    story = Story(rt, caldav)  # connected, never synced
    later = clock.now() + dt.timedelta(hours=25)
    clock.set_now(lambda: later)
    assert incidents.check(rt)["escalations"] == 1
    assert incidents.check(rt)["escalations"] == 0
    (notification,) = m.Notification.select()
    assert notification.event == "incident.escalated"
    assert story.status()["status"] == "pending"


def test_health_sweep_finds_a_broken_password_between_syncs(story):
    from core import health

    story.sync()
    story.server.set_password("changed-1")
    later = clock.now() + dt.timedelta(minutes=6)
    clock.set_now(lambda: later)
    result = health.sweep(story.rt)
    assert result["checked"] == 1 and result["status_changes"] == 1
    assert story.status()["status"] == "relink_required"
    assert m.Incident.select().count() == 1
