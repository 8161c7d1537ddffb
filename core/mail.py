"""E-mail delivery of notifications over SMTP (``CALSYNC_SMTP_URL``).

``smtp://user:pass@host:587`` uses STARTTLS when the server offers it
(``?starttls=require`` insists, ``?starttls=off`` never), ``smtps://`` speaks TLS
from the first byte. The sender is named in every mail so it can be
allow-listed.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit


SMTP_TIMEOUT = 20


class EmailSender:
    channel = "email"

    def __init__(self, smtp_url: str, mail_from: str, ssl_context: ssl.SSLContext | None = None):
        parts = urlsplit(smtp_url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.starttls = (parse_qs(parts.query).get("starttls", ["auto"])[0] or "auto").lower()
        self.mail_from = mail_from
        self.ssl_context = ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.scheme == "smtps":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT, context=self.ssl_context)
        client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        client.ehlo()
        if self.starttls == "require" or (self.starttls == "auto" and client.has_extn("starttls")):
            client.starttls(context=self.ssl_context)
            client.ehlo()
        return client

    def send(self, outgoing) -> str:
        message = EmailMessage()
        name, address = parseaddr(self.mail_from)
        message["From"] = formataddr((name or "Calsync", address or self.mail_from))
        message["To"] = outgoing.delivery.recipient
        message["Subject"] = outgoing.subject
        message["Message-ID"] = make_msgid(domain=(address or "calsync.local").split("@")[-1])
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(outgoing.text)
        with self._connect() as client:
            if self.username:
                client.login(self.username, self.password)
            client.send_message(message)
        return message["Message-ID"]
