"""The notification outbox: every incident event is written once, then delivered.

``notify`` writes one Notification (a unique ``dedupe_key`` makes a second
write of the same event a no-op) and one Delivery per *configured* channel
that takes it (:func:`recipients`: decided from the settings, never from the
senders the writing process happens to have loaded, so a break found by the
CLI, the console or the web role reaches Slack and e-mail like one found by
the scheduler). ``deliver_pending`` hands due deliveries to the senders of
this process and leaves the others for a process that has them (the
service); a failure is kept and retried with backoff, never dropped, and a
delivery is claimed before it is sent so two schedulers never send it twice.
Only a :class:`PermanentFailure` (a recipient or message that can never be
accepted) ends, after PERMANENT_ATTEMPTS, as ``failed`` with its reason.
The relink URL a notification carries is encrypted and wiped once every
channel has sent it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Protocol

import peewee as pw

import models as m
from core import clock, waiting, wording
from core.text import for_terminal

log = logging.getLogger("calsync.outbox")

MAX_BACKOFF = dt.timedelta(hours=1)
PERMANENT_ATTEMPTS = 3
# Names and accounts come from outside (an old database, a provider): one line each in every message.
ONE_LINE_FIELDS = ("staff", "staff_name", "account", "provider")
STALE_CLAIM = dt.timedelta(minutes=10)
BATCH = 100


@dataclasses.dataclass
class Outgoing:
    """What a sender gets: the facts, the plain-words text, and the relink URL if any."""

    notification: m.Notification
    delivery: m.Delivery
    event: str
    payload: dict
    relink_url: str
    subject: str
    text: str


class PermanentFailure(Exception):
    """A sender's "this can never be delivered" (an invalid recipient, a refused message): not retried forever."""


class Sender(Protocol):
    channel: str

    def send(self, outgoing: Outgoing) -> str:
        """Deliver; returns an external reference (message id...). Raises on failure."""


STAFF_EVENTS = ("incident.opened", "incident.reminder", "incident.resolved", "relink.link", "calendar.trouble", "calendar.recovered")
HOST_EVENTS = ("appointment.external_edit", "appointment.external_delete", "appointment.conflict")
CHANNELS = ("log", "email", "slack", "webhook")


def configured_channels(settings) -> list[str]:
    """The channels this installation delivers on, whichever process asks."""
    channels = ["log"]
    if settings.smtp_url:
        channels.append("email")
    if settings.slack_enabled:
        channels.append("slack")
    if settings.host_webhook_url:
        channels.append("webhook")
    return channels


def recipients(settings, event: str, staff: m.Staff | None) -> dict[str, str]:
    """Channel -> recipient for one notification, from the settings alone.

    The log takes everything; e-mail and Slack take what a staff member must
    read (Slack finds a staff member without a Slack id by e-mail when it
    sends), and Slack takes escalations into the support channel; the host
    webhook takes changes of appointments.
    """
    found = {"log": "log"}
    channels = configured_channels(settings)
    if event in STAFF_EVENTS and staff is not None:
        if "email" in channels:
            found["email"] = staff.email
        if "slack" in channels:
            found["slack"] = staff.slack_id or f"email:{staff.email}"
    if event == "incident.escalated" and "slack" in channels and settings.support_channel:
        found["slack"] = settings.support_channel
    if event in HOST_EVENTS and "webhook" in channels:
        found["webhook"] = settings.host_webhook_url
    return found


class LogSender:
    """Always on: one line per notification in the service log (never the relink URL)."""

    channel = "log"

    def send(self, outgoing: Outgoing) -> str:
        p = outgoing.payload
        log.warning(
            "notification event=%s connection=%s staff=%s status=%s reason=%r missed=%s",
            outgoing.event,
            p.get("connection"),
            p.get("staff"),
            p.get("status"),
            p.get("reason"),
            p.get("missed"),
        )
        return ""


def notify(
    rt,
    event: str,
    dedupe_key: str,
    payload: dict,
    *,
    incident: m.Incident | None = None,
    connection: m.Connection | None = None,
    staff: m.Staff | None = None,
    relink_url: str = "",
    channels: tuple[str, ...] | None = None,
) -> m.Notification | None:
    """Write one notification and its deliveries; None when this event was written before."""
    with m.db.atomic():
        if m.Notification.select().where(m.Notification.dedupe_key == dedupe_key).exists():
            return None
        try:
            with m.db.atomic():
                notification = m.Notification.create(
                    event=event,
                    dedupe_key=dedupe_key,
                    incident=incident,
                    connection=connection,
                    staff=staff,
                    payload=json.dumps(payload, sort_keys=True, default=str),
                    secret=rt.vault.encrypt({"relink_url": relink_url}) if relink_url else "",
                )
        except pw.IntegrityError:
            return None  # another process wrote the same event a moment ago
        for channel, recipient in recipients(rt.settings, event, staff).items():
            if channels is not None and channel not in channels and channel != "log":
                continue
            m.Delivery.create(notification=notification, channel=channel, recipient=recipient)
    return notification


def _claim(delivery_id: int, now: dt.datetime) -> bool:
    claimed = (
        m.Delivery.update(state=m.DELIVERY_SENDING, claimed_at=now)
        .where(
            m.Delivery.id == delivery_id,
            (m.Delivery.state == m.DELIVERY_PENDING)
            | ((m.Delivery.state == m.DELIVERY_SENDING) & (m.Delivery.claimed_at < now - STALE_CLAIM)),
        )
        .execute()
    )
    return claimed == 1


def deliver_pending(rt, limit: int = BATCH) -> dict:
    """Send what is due; returns counts of sent and failed deliveries."""
    from core import notices

    now = clock.now()
    senders = {s.channel: s for s in rt.senders}
    due = list(
        m.Delivery.select(m.Delivery.id)
        .where(
            m.Delivery.channel.in_(list(senders)),  # the others wait for a process that can send them
            ((m.Delivery.state == m.DELIVERY_PENDING) & (m.Delivery.next_attempt_at <= now))
            | ((m.Delivery.state == m.DELIVERY_SENDING) & (m.Delivery.claimed_at < now - STALE_CLAIM)),
        )
        .order_by(m.Delivery.next_attempt_at, m.Delivery.id)
        .limit(limit)
    )
    sent = failed = 0
    for row in due:
        if not _claim(row.id, now):
            continue
        delivery = m.Delivery.get_by_id(row.id)
        notification = delivery.notification
        sender = senders[delivery.channel]  # the query above took only channels this process can send
        payload = json.loads(notification.payload)
        if _outdated(notification):
            # Held back by a failed send until after the fix: "needs attention" would now be wrong.
            delivery.state, delivery.sent_at, delivery.last_error = m.DELIVERY_SENT, clock.now(), "skipped: resolved before delivery"
            delivery.save()
            _wipe_secret_when_done(notification)
            continue
        try:
            relink_url = rt.vault.decrypt(notification.secret).get("relink_url", "") if notification.secret else ""
            payload = _one_line_fields(payload)
            subject, text = notices.render(notification.event, payload, relink_url)
            ref = sender.send(Outgoing(notification, delivery, notification.event, payload, relink_url, subject, text))
        except Exception as exc:  # noqa: BLE001 — any sender failure: keep it, retry later
            _failed(delivery, notification, exc)
            failed += 1
            continue
        delivery.state = m.DELIVERY_SENT
        delivery.attempts += 1
        delivery.sent_at = clock.now()
        delivery.external_ref = ref or ""
        delivery.last_error = ""
        delivery.save()
        sent += 1
        _wipe_secret_when_done(notification)
    return {"sent": sent, "failed": failed}


def _failed(delivery: m.Delivery, notification: m.Notification, exc: Exception) -> None:
    """Keep a failed send for a retry with backoff; a permanent one gives up after PERMANENT_ATTEMPTS."""
    delivery.attempts += 1
    delivery.last_error = for_terminal(f"{exc.__class__.__name__}: {exc}")[:1000]
    if isinstance(exc, PermanentFailure) and delivery.attempts >= PERMANENT_ATTEMPTS:
        delivery.state = m.DELIVERY_FAILED
        delivery.save()
        log.error(
            "delivery %s (%s, %s) failed for good after %s attempts: %s",
            delivery.id,
            delivery.channel,
            notification.event,
            delivery.attempts,
            delivery.last_error,
        )
        _wipe_secret_when_done(notification)
        return
    delay = min(dt.timedelta(seconds=30 * 2 ** min(delivery.attempts - 1, 10)), MAX_BACKOFF)
    delivery.state = m.DELIVERY_PENDING
    delivery.next_attempt_at = clock.now() + delay
    delivery.save()
    log.warning(
        "delivery %s (%s, %s) failed, retry in %ss: %s",
        delivery.id,
        delivery.channel,
        notification.event,
        int(delay.total_seconds()),
        delivery.last_error,
    )


def _one_line_fields(payload: dict) -> dict:
    """The payload with its names made one line: a stored CR/LF cannot add lines to a message or the log."""
    return {k: " ".join(for_terminal(v).split()) if k in ONE_LINE_FIELDS and isinstance(v, str) else v for k, v in payload.items()}


def _outdated(notification: m.Notification) -> bool:
    if notification.event not in ("incident.opened", "incident.reminder") or not notification.incident_id:
        return False
    return m.Incident.select().where(m.Incident.id == notification.incident_id, m.Incident.resolved_at.is_null(False)).exists()


def _wipe_secret_when_done(notification: m.Notification) -> None:
    if not notification.secret:
        return
    open_ = m.Delivery.select().where(m.Delivery.notification == notification, m.Delivery.state.not_in(list(m.DELIVERY_DONE))).exists()
    if not open_:
        m.Notification.update(secret="").where(m.Notification.id == notification.id).execute()


def payload_for(rt, conn: m.Connection, **extra) -> dict:
    """The facts every notification about a connection carries."""
    from core.messages import meaning

    data = {
        "connection": conn.id,
        "staff": conn.staff.email,
        "staff_name": conn.staff.name,
        "slack_id": conn.staff.slack_id or "",
        "provider": conn.provider,
        "account": conn.account,
        "status": conn.status,
        "meaning": meaning(conn.status),
        "reason": conn.reason or meaning(conn.status),
        "since": clock.utc(conn.status_since).isoformat(),
        "missed": waiting.missed_count(conn),
        "mail_from": rt.settings.mail_from,
    }
    destination = conn.calendars.where(m.Calendar.is_primary == True).first()
    calendar = destination.name if destination is not None else None
    failing = waiting.is_failing(conn)
    missed = waiting.missed_appointments(conn, limit=WAITING_LISTED)
    # The words and the waiting list every channel shows (core.wording), said once here so an
    # alert sent later by another process says what this one saw.
    data.update(
        {
            "provider_name": wording.provider_label(conn.provider, conn.server_url),
            "calendar": calendar,
            "timezone": conn.staff.timezone,
            "problem": wording.problem(conn.status, conn.provider, server_url=conn.server_url, calendar=calendar, failing=failing),
            "headline": wording.headline(
                conn.status, conn.provider, server_url=conn.server_url, calendar=calendar, waiting=data["missed"], failing=failing
            ),
            "todo": wording.staff_advice(conn.status, conn.provider, conn.server_url),
            "waiting": [
                {
                    "id": a.external_id,
                    "subject": a.subject[:200],
                    "start": clock.utc(a.starts_at).isoformat(),
                    "end": clock.utc(a.ends_at).isoformat(),
                }
                for a in missed
            ],
        }
    )
    data.update(extra)
    return data


WAITING_LISTED = 5  # appointments a notification lists by name; the count says the rest
