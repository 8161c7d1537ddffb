"""E-mail delivery of notifications over SMTP (``CALSYNC_SMTP_URL``).

``smtp://user:pass@host:587`` uses STARTTLS when the server offers it
(``?starttls=require`` insists, ``?starttls=off`` never), ``smtps://`` speaks TLS
from the first byte.

Every mail is ``multipart/alternative``: the plain text of :mod:`core.notices` first,
unchanged, then the same words as HTML (:mod:`core.mail_html`) with the link the mail is
about as a button. ``From`` is ``CALSYNC_MAIL_FROM`` (named "Calsync" when it gives no
name); the footers name the sending address (the HTML one also says the mail is an
automatic message from Calsync) so staff can allow-list it. ``Auto-Submitted:
auto-generated`` keeps auto-responders quiet; there is no ``List-Unsubscribe``: these mails
say a calendar needs fixing, and there is nothing to unsubscribe from.

Every header is built with the stdlib's address and header classes from
values made one line first, so a name or account holding CR/LF (an old
database, a hostile provider) can add no header and no recipient. A mail
that can never be sent (an invalid recipient, a refused address or
message) raises :class:`~core.outbox.PermanentFailure`, which the outbox
stops retrying; a server that is down or refuses our login stays a retry.
"""

from __future__ import annotations

import email.errors
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from core import mail_html
from core.outbox import PermanentFailure
from core.text import for_terminal

SMTP_TIMEOUT = 20


def one_line(value) -> str:
    """``value`` as one header-safe line: controls shown, line breaks and runs of space made one space."""
    return " ".join(for_terminal(value or "").split())


def address(addr_spec: str, display_name: str = "") -> Address:
    """A checked mailbox; ValueError in plain words when ``addr_spec`` is not one plain ASCII e-mail address."""
    problem = "non-ASCII addresses are not supported" if not addr_spec.isascii() else ""
    if not problem:
        try:
            parsed = Address(display_name=one_line(display_name), addr_spec=addr_spec)
        except (ValueError, email.errors.MessageError) as exc:
            problem = one_line(exc)
        else:
            problem = "" if parsed.username and "." in parsed.domain else "no user or domain"
    if problem:
        raise ValueError(f"{one_line(repr(addr_spec))} is not a valid e-mail address ({problem})")
    return parsed


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

    def message(self, outgoing) -> EmailMessage:
        """The mail for ``outgoing``: a bad recipient makes it impossible (PermanentFailure); a bad
        sender is a setting to fix, so its ValueError stays a retry."""
        message = EmailMessage()
        name, spec = parseaddr(self.mail_from)
        sender = address(spec or self.mail_from, name or "Calsync")
        try:
            recipient = address(outgoing.delivery.recipient)
        except ValueError as exc:
            raise PermanentFailure(f"the recipient {exc}") from None
        message["From"] = sender
        message["To"] = recipient
        message["Subject"] = subject = one_line(outgoing.subject)
        message["Message-ID"] = make_msgid(domain=sender.domain or "calsync.local")
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(outgoing.text)
        message.add_alternative(
            mail_html.render(outgoing.text, subject=subject, sender=sender.addr_spec, links=(outgoing.relink_url,)),
            subtype="html",
        )
        return message

    def send(self, outgoing) -> str:
        message = self.message(outgoing)
        try:
            with self._connect() as client:
                if self.username:
                    client.login(self.username, self.password)
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentFailure(f"the mail server refused the recipient ({one_line(exc.recipients)})") from None
            raise
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code >= 500:
                raise PermanentFailure(f"the mail server refused the message ({exc.smtp_code} {one_line(exc.smtp_error)})") from None
            raise
        return message["Message-ID"]
