"""Outgoing notifications to the host product: an HMAC-signed JSON POST.

Sent when an edit or deletion in an external calendar changed an
appointment (the host's copy must follow). The signature header is
``X-Calsync-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
with CALSYNC_HOST_WEBHOOK_SECRET, so the host can check origin and freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from core import netguard
from core.secret import Secret

EVENTS = ("appointment.external_edit", "appointment.external_delete", "appointment.conflict")  # core.outbox.HOST_EVENTS


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookSender:
    channel = "webhook"

    def __init__(self, url: str, secret: Secret, timeout: float = 10.0, deadline: float = 30.0):
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.deadline = deadline  # the whole POST, however slowly the host answers
        self.session = netguard.bounded(requests.Session())

    def send(self, outgoing) -> str:
        body = json.dumps({"event": outgoing.event, "id": outgoing.notification.dedupe_key, **outgoing.payload}, sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "calsync-webhook/1"}
        if self.secret:
            headers["X-Calsync-Signature"] = signature(self.secret.reveal(), timestamp, body)
        with netguard.within(self.deadline):
            response = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True)
            response.close()  # only the status matters: a huge or endless answer is never read
        if response.status_code >= 300:
            raise RuntimeError(f"the host answered HTTP {response.status_code}")
        return str(response.status_code)
