"""Slack as a channel of the core's outbox: DMs to staff, escalations to support.

The DM of an opened incident is remembered (channel + ts in the delivery's
external_ref); when the incident resolves, that message (and its reminders)
is updated in place instead of posting a new one. Rate limits are retried by
slack_sdk's handler (Retry-After honoured); anything still failing raises,
and the outbox keeps the delivery for a later retry.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

import models as m
from bot import blocks, calendars, out
from core import access, actions, wording

log = logging.getLogger("calsync.slack")


class SlackSender:
    channel = "slack"

    def __init__(self, rt, client: WebClient):
        self.rt = rt
        self.client = client

    def _user_channel(self, recipient: str, notification: m.Notification) -> str:
        if recipient.startswith("email:"):
            recipient = self._user_by_email(recipient[len("email:") :], notification.staff_id)
        if recipient.startswith(("U", "W")):
            return self.client.conversations_open(users=recipient)["channel"]["id"]
        return recipient

    def _user_by_email(self, email: str, staff_id: int | None) -> str:
        """The Slack user holding the staff member's e-mail, remembered as theirs.

        Never a Slack user already linked to another staff member: their profile
        e-mail is not proof enough to hand them this staff member's links.
        """
        try:
            user_id = self.client.users_lookupByEmail(email=email)["user"]["id"]
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                raise RuntimeError(f"no Slack user with the e-mail {email}; set the staff member's --slack-id") from None
            raise
        if access.slack_id_taken(user_id, staff_id):
            raise RuntimeError(
                f"the Slack user with the e-mail {email} is linked to another staff member; set this staff member's --slack-id"
            )
        if staff_id:
            access.link_slack_id(staff_id, user_id)
        return user_id

    def send(self, outgoing) -> str:
        notification, event = outgoing.notification, outgoing.event
        payload = self._facts(outgoing.payload) if event != "incident.escalated" else outgoing.payload
        if event == "incident.resolved":
            updated = self._update_earlier(notification.incident_id, blocks.resolved_blocks(payload), "Reconnected")
            if updated:
                self._refresh_home(notification)
                return updated
        if event == "relink.link" and notification.connection_id:
            # A reissued link replaces the old one: the open incident's alerts get the new button in place.
            incident = (
                m.Incident.select(m.Incident.id)
                .where(m.Incident.connection == notification.connection_id, m.Incident.resolved_at.is_null())
                .scalar()
            )
            if incident:
                self._update_earlier(
                    incident,
                    blocks.alert_blocks(
                        "incident.opened", payload, outgoing.relink_url, self._download_url(payload), self._calendars(payload)
                    ),
                    blocks.alert_title("incident.opened", payload),
                )
        channel = self._user_channel(outgoing.delivery.recipient, notification)
        text = outgoing.subject
        if event == "incident.escalated":
            block_list = blocks.escalation_blocks(payload, outgoing.subject)
        elif event == "incident.resolved":
            block_list = blocks.resolved_blocks(payload)
        elif event == "relink.link":
            block_list = blocks.relink_link_blocks(payload, outgoing.relink_url)
        elif event in calendars.CALENDAR_EVENTS:
            text = payload.get("headline") or outgoing.subject
            block_list = calendars.calendar_alert_blocks(event, payload)
        else:
            # The notification on the phone says what broke and what waits, like the header.
            text = blocks.alert_title(event, payload)
            block_list = blocks.alert_blocks(event, payload, outgoing.relink_url, self._download_url(payload), self._calendars(payload))
        response = out.post(self.client, channel, text, block_list)
        self._refresh_home(notification)
        return f"{response['channel']}|{response['ts']}"

    def _facts(self, payload: dict) -> dict:
        """The payload with the words and the waiting list an alert shows. Notifications written
        before the outbox carried them get them from the connection as it is now."""
        if payload.get("headline") and "waiting" in payload and "timezone" in payload:
            return payload
        try:
            row = actions.connection_detail(self.rt, payload["connection"], runs=0, history=0)
        except (actions.ActionError, KeyError):
            return payload
        status, missed = payload.get("status", row["status"]), int(payload.get("missed") or 0)
        facts = {
            "provider_name": row.get("provider_name"),
            "server": row.get("server") or "",
            "calendar": row.get("destination"),
            "timezone": row.get("timezone"),
            "headline": wording.headline(
                status, row["provider"], server_url=row.get("server") or "", calendar=row.get("destination"), waiting=missed
            ),
            "problem": wording.problem(status, row["provider"], server_url=row.get("server") or "", calendar=row.get("destination")),
            "todo": wording.staff_advice(status, row["provider"], row.get("server") or ""),
            "waiting": [{"subject": a["subject"], "start": a["start"]} for a in row.get("missed_appointments", [])[: blocks.WAITING_SHOWN]],
        }
        return {**facts, **{k: v for k, v in payload.items() if v not in (None, "") or k not in facts}}

    def _refresh_home(self, notification: m.Notification) -> None:
        """The staff member's App Home shows the new status too (best effort: the DM is what counts)."""
        if not notification.staff_id or notification.event == "incident.escalated":
            return
        slack_id = m.Staff.get_by_id(notification.staff_id).slack_id
        if not slack_id:
            return
        try:
            from bot.listeners.home import publish_home

            publish_home(self.rt, self.client, slack_id)
        except Exception as exc:  # noqa: BLE001 — never fail (and so resend) an alert because the Home tab could not be drawn
            log.info("slack: App Home of %s not refreshed: %s", slack_id, exc)

    def _download_url(self, payload: dict) -> str:
        if not payload.get("missed"):
            return ""
        return actions.download_link(self.rt, payload["connection"])["url"]

    def _calendars(self, payload: dict) -> list[dict]:
        """What the alert's picker offers: calendar_missing and read_only can be fixed by choosing another."""
        status = payload.get("status", "")
        if status not in blocks.PICKER_STATUSES:
            return []
        try:
            return blocks.choosable(actions.list_calendars(self.rt, payload["connection"], refresh=True), status)
        except actions.ActionError:
            return []

    def _update_earlier(self, incident_id: int | None, new_blocks: list[dict], text: str) -> str:
        """Redraw the incident's earlier DMs (as "Reconnected", or with a new link); returns the first ref, or ''."""
        if not incident_id:
            return ""
        earlier = (
            m.Delivery.select()
            .join(m.Notification)
            .where(
                m.Notification.incident == incident_id,
                m.Notification.event.in_(["incident.opened", "incident.reminder"]),
                m.Delivery.channel == "slack",
                m.Delivery.state == m.DELIVERY_SENT,
                m.Delivery.external_ref != "",
            )
            .order_by(m.Delivery.id)
        )
        refs = []
        for delivery in earlier:
            channel, _, ts = delivery.external_ref.partition("|")
            try:
                out.update(self.client, channel, ts, text, new_blocks)
            except SlackApiError as exc:
                if exc.response.get("error") not in ("message_not_found", "channel_not_found", "cant_update_message"):
                    raise
                continue  # the user deleted it: a new message says it instead
            refs.append(delivery.external_ref)
        return refs[0] if refs else ""
