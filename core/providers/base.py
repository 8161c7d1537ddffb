"""The provider contract: what the sync engine may ask of any calendar service.

A provider speaks one wire protocol (CalDAV, a plain iCalendar URL, later the
Google and Microsoft APIs) and translates every failure into the small
hierarchy below. Only that hierarchy reaches the sync engine and the status
model; nothing above this layer looks at HTTP status codes.

========================  =====================  ===============================
error                     connection status      what the engine does
========================  =====================  ===============================
AuthRejected              relink_required        stop the run, open an incident
WriteForbidden            read_only              keep reading, hold writes
CalendarGone              calendar_missing       hold writes until a new primary
Transient                 (unchanged)            retried; long outage→unreachable
BadData / UrlRefused      (unchanged)            the run fails with a clear reason
SyncTokenInvalid          (none)                 full resync, not an error
NotFound/PreconditionFail (none)                 per-object conflict handling
========================  =====================  ===============================
"""

from __future__ import annotations

import abc
import dataclasses

from core.config import Settings
from core.http import HttpClient


class ProviderError(Exception):
    """Base of every provider failure.

    ``answer`` keeps the provider's raw answer (status line and the start of
    the body) for the status history; ``str()`` is the plain-words reason.
    """

    status: str | None = None
    transient = False

    def __init__(self, reason: str, answer: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


class AuthRejected(ProviderError):
    status = "relink_required"


class WriteForbidden(ProviderError):
    status = "read_only"


class CalendarGone(ProviderError):
    status = "calendar_missing"


class Transient(ProviderError):
    """5xx, 429, timeouts, refused connections: retried, never alerted on its own."""

    transient = True


class BadData(ProviderError):
    """The source answered, but with something that is not a usable calendar."""


class SourceRefused(BadData):
    """The source answered in a way calsync does not follow: an answer too large, a redirect that
    would carry credentials to another host, a loop of redirects."""


class AnswerTooLarge(SourceRefused):
    """The answer was larger than CALSYNC_HTTP_MAX_BYTES (asking for less may fit)."""


class UrlRefused(ProviderError):
    """A user-supplied URL points somewhere calsync may not go (private networks)."""


class SyncTokenInvalid(ProviderError):
    """The stored sync token is no longer accepted: do a full resync."""


class NotFound(ProviderError):
    """The object is not (or no longer) on the server."""


class PreconditionFailed(ProviderError):
    """The object changed on the server since we last saw it (ETag mismatch)."""


class AlreadyExists(PreconditionFailed):
    """Create refused because an object with that name exists already; ``href`` is where it is."""

    def __init__(self, reason: str, answer: str = "", *, href: str):
        super().__init__(reason, answer)
        self.href = href


def transport_error(exc: Exception, who: str) -> ProviderError:
    """What a failed request (no usable answer) means, in the words of ``who`` ("the CalDAV server").

    Timeouts and broken connections are transient; an answer too large, a redirect that would
    carry credentials elsewhere and a loop of redirects are the source's fault and say so.
    """
    import requests

    from core import http

    if isinstance(exc, http.URLNotAllowed):
        return UrlRefused(str(exc))
    if isinstance(exc, http.DeadlineExceeded):
        return Transient(f"{who} {exc}")
    if isinstance(exc, http.AnswerTooLarge):
        return AnswerTooLarge(f"{who} sent an answer too large to read: {exc}")
    if isinstance(exc, http.CredentialsRedirect):
        return SourceRefused(
            f"{who} redirected to another host ({exc.host}); calsync does not send your credentials "
            "there. If the calendar moved, connect again with its new address"
        )
    if isinstance(exc, requests.TooManyRedirects):
        return SourceRefused(f"{who} redirects too many times")
    if http.is_timeout(exc):
        return Transient(f"{who} did not answer in time")
    if isinstance(exc, requests.ConnectionError):
        return Transient(f"could not connect to {who}", str(exc)[:300])
    return Transient(f"the request to {who} failed: {exc.__class__.__name__}")


@dataclasses.dataclass
class CalendarInfo:
    remote_id: str
    name: str
    writable: bool = True
    privileges_known: bool = False
    # The account's own calendar (not one shared with it, subscribed to or generated, like holidays):
    # a new connection counts only its own calendars as busy (core.actions.connections).
    owned: bool = True
    ctag: str = ""
    sync_token: str = ""


@dataclasses.dataclass
class RemoteItem:
    href: str
    etag: str
    data: str


@dataclasses.dataclass
class Changes:
    """What changed in a calendar since the stored sync state.

    ``complete`` means ``items`` lists every object (a full listing): anything
    known before and not listed is gone. ``unchanged`` short-cuts all of it.
    """

    items: list[RemoteItem] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    complete: bool = False
    sync_token: str = ""
    ctag: str = ""
    unchanged: bool = False


@dataclasses.dataclass
class CalendarState:
    """The sync state the engine hands a provider for one calendar."""

    remote_id: str
    sync_token: str = ""
    ctag: str = ""
    known: dict[str, str] = dataclasses.field(default_factory=dict)  # href -> etag
    # For probe(): ``check`` asks only "exists, writable?" (a health check, a connection test), not
    # whether it moved; ``first_read``: never read whole, so there is nothing to compare with and
    # only the sync token to start from is wanted.
    check: bool = False
    first_read: bool = False
    # ``learn_ctag``: the calendar was seen unchanged since its last read, so a ctag is worth asking
    # for with the token (it is kept when the token vouches for it; core.sync).
    learn_ctag: bool = False
    # For changes(): the sync token the probe just saw; a read that gets none of its own (a CalDAV
    # first read by calendar-query) starts from it, and what changed after the probe is seen next time.
    probed_token: str = ""


class Provider(abc.ABC):
    """One account at one calendar service.

    ``params`` holds the non-secret settings (``server_url``, ``account``);
    ``secrets`` the decrypted credentials. Every network call goes through
    ``http``, which counts requests and applies timeouts, retries and the
    private-network guard.
    """

    name: str = ""
    read_only: bool = False  # the provider itself can never write (ICS URL)
    settings: Settings  # the runtime's, set by the runtime when it builds the provider (OAuth refreshes with it)

    def __init__(self, params: dict, secrets: dict, http: HttpClient):
        self.params = params
        self.secrets = secrets
        self.http = http

    @property
    def requests_made(self) -> int:
        return self.http.requests_made

    @abc.abstractmethod
    def discover(self) -> list[CalendarInfo]:
        """The account's calendars; raises AuthRejected on bad credentials."""

    @abc.abstractmethod
    def probe(self, state: CalendarState) -> CalendarInfo:
        """One cheap request: the calendar exists (else CalendarGone), may we write, its ctag."""

    @abc.abstractmethod
    def changes(self, state: CalendarState) -> Changes:
        """Objects changed since ``state``; SyncTokenInvalid is handled inside (full resync)."""

    def create(self, calendar_id: str, uid: str, data: str) -> tuple[str, str]:
        """Write a new object; returns (href, etag). AlreadyExists if the name is taken."""
        self._check_writable()
        return self._create(calendar_id, uid, data)

    def update(self, href: str, data: str, etag: str) -> str:
        """Replace an object if it still has ``etag``; returns the new etag."""
        self._check_writable()
        return self._update(href, data, etag)

    def delete(self, href: str, etag: str) -> None:
        """Remove an object; an object already gone is not an error."""
        self._check_writable()
        self._delete(href, etag)

    @abc.abstractmethod
    def get(self, href: str) -> RemoteItem:
        """One object; NotFound if it is gone."""

    def _check_writable(self) -> None:
        if self.read_only:
            raise WriteForbidden(f"{self.name} calendars are read-only: calsync can only read them")

    def _create(self, calendar_id: str, uid: str, data: str) -> tuple[str, str]:
        raise NotImplementedError

    def _update(self, href: str, data: str, etag: str) -> str:
        raise NotImplementedError

    def _delete(self, href: str, etag: str) -> None:
        raise NotImplementedError
