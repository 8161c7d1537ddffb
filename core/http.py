"""Outgoing HTTP for providers: every request bounded in time and size, and kept where it may go.

- **Deadlines**: each request (connect, TLS, sending, the answer's headers and its body, retries
  included) must finish within ``deadline`` seconds (``CALSYNC_HTTP_DEADLINE``), and a sync may
  set a *budget* that ends every request it makes at one moment. The per-read timeout
  (``CALSYNC_HTTP_TIMEOUT``) alone cannot stop a server that sends one byte every few seconds:
  the sockets calsync opens shrink their own timeout to what is left of the deadline before
  every read and write, so a trickle ends at the deadline like silence does.
- **Sizes**: an answer's body is read as a stream and counted after decompression; past
  ``max_bytes`` the request fails (:class:`AnswerTooLarge`), so neither a huge listing nor a gzip
  bomb is held in memory. Error bodies are read up to 64 KiB and cut.
- **Where**: user-supplied URLs may not reach loopback or private networks (unless
  ``CALSYNC_ALLOW_PRIVATE_URLS``), checked on the address each socket connects to
  (:mod:`core.netguard`, which also keeps the deadline). Redirects are followed here, hop by hop; a request that
  carries credentials (a password, a bearer token) is never sent to another origin: such a
  redirect fails with :class:`CredentialsRedirect`, naming the host (an upgrade to https on the
  same host is allowed).
- **How many at once**: one process has at most ``per_host`` requests in flight to one host
  (``CALSYNC_HTTP_PER_HOST``, default 4) however many workers sync: more at once do not make a
  server answer sooner, they make it contend (RFC 9112 §9.4: a client ought to limit its
  simultaneous connections to a server). A request waits for a free slot within its deadline.
- Retries are urllib3's (``Retry``: exponential backoff, ``Retry-After`` honoured up to a cap),
  inside the deadline.
"""

from __future__ import annotations

import functools
import http.client
import threading
import time
import weakref
from urllib.parse import urljoin, urlsplit

import requests
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import default_headers
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from core import netguard
from core.netguard import URLNotAllowed, check_shape, check_url  # noqa: F401 (the names callers use)

USER_AGENT = "calsync/0.1 (+calendar sync)"
_DEFAULT_HEADERS = {**default_headers(), "User-Agent": USER_AGENT}  # requests' (Accept-Encoding, Accept, keep-alive)
MAX_REDIRECTS = 5
RETRY_AFTER_CAP = 30.0
RETRY_STATUSES = (429, 500, 502, 503, 504)
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
ERROR_BODY_BYTES = 64 * 1024
CHUNK = 16 * 1024  # read per step: a compressed chunk cannot expand past ~16 MiB before it is counted


class DeadlineExceeded(requests.Timeout):
    """The request (or the sync's budget) ran out of time; ``str()`` says how long it had."""


class AnswerTooLarge(requests.RequestException):
    """The answer's body passed its size cap; ``declared`` is its Content-Length when that said so."""

    def __init__(self, message: str, declared: int | None = None):
        super().__init__(message)
        self.declared = declared


class CredentialsRedirect(requests.RequestException):
    """A request with credentials was redirected to another origin; ``host`` names it."""

    def __init__(self, host: str):
        super().__init__(f"redirected to another host ({host}); calsync does not send the credentials there")
        self.host = host


class _CappedRetry(Retry):
    """A Retry that never sleeps longer than RETRY_AFTER_CAP for one Retry-After, nor past the deadline."""

    def get_retry_after(self, response):
        value = super().get_retry_after(response)
        return None if value is None else min(value, RETRY_AFTER_CAP, netguard.left(RETRY_AFTER_CAP))

    def get_backoff_time(self):
        return min(super().get_backoff_time(), netguard.left(RETRY_AFTER_CAP))


@functools.lru_cache(maxsize=16)
def _shared_adapter(allow_private: bool, ca_file: str | None, retries: int, backoff: float, pool_size: int) -> netguard.GuardedAdapter:
    """One adapter per set of rules for the whole process, so its connections are kept alive from
    one sync to the next (a worker's next sync of the same host skips the TCP and TLS handshakes).

    Only connections are shared: each client keeps its own session (cookies, headers) and sends
    its credentials with each request. A connection is opened under the client's rules (the
    guard, the deadline of the request that opened it) and reused only by clients with the same
    rules; an answer not read to the end closes its connection instead of returning it."""
    retry = _CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=0,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,  # our writes are conditional (If-Match / If-None-Match): safe to repeat
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = netguard.GuardedAdapter(allow_private, ca_file=ca_file, max_retries=retry, pool_connections=32, pool_maxsize=pool_size)
    _ADAPTERS.append(adapter)
    return adapter


_ADAPTERS: list = []


# Held only while a request uses them: a host nobody is talking to has no entry, so user-supplied
# host names (a million subdomains) cannot grow it; a host's slots made anew are all free, as they were.
_SLOTS: weakref.WeakValueDictionary[tuple, threading.BoundedSemaphore] = weakref.WeakValueDictionary()
_SLOTS_LOCK = threading.Lock()


def _slots(origin: tuple[str, str, int], per_host: int) -> threading.BoundedSemaphore:
    """The process's in-flight slots for one host (shared by the clients with the same limit)."""
    key = (origin[1], origin[2], per_host)
    with _SLOTS_LOCK:
        slots = _SLOTS.get(key)
        if slots is None:
            slots = threading.BoundedSemaphore(per_host)
            _SLOTS[key] = slots
    return slots


def close_idle() -> None:
    """Close every kept-alive connection of the process (at shutdown: servers need not wait
    for our idle connections to time out)."""
    for adapter in _ADAPTERS:
        adapter.poolmanager.clear()


def is_timeout(exc: BaseException) -> bool:
    """True for a timeout, also when urllib3's retries wrapped it into a ConnectionError."""
    from urllib3.exceptions import MaxRetryError

    if isinstance(exc, requests.Timeout):
        return True
    inner = exc.args[0] if exc.args else None
    reason = inner.reason if isinstance(inner, MaxRetryError) else None
    # urllib3's NewConnectionError (refused, unreachable) is a ConnectTimeoutError by inheritance only.
    return isinstance(reason, (ReadTimeoutError, ConnectTimeoutError)) and not isinstance(reason, NewConnectionError)


def _closed_under_us(exc: BaseException) -> bool:
    """The connection was closed by the server between two requests: reset, or closed before
    any byte of the answer (what a server that ends idle keep-alive connections causes)."""
    from urllib3.exceptions import MaxRetryError, ProtocolError

    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError):
        inner = inner.reason
    if not isinstance(inner, ProtocolError):
        return False
    cause = inner.args[1] if len(inner.args) > 1 else None
    return isinstance(cause, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _redirects(response: requests.Response, follow: bool) -> bool:
    return follow and response.status_code in (301, 302, 303, 307, 308) and bool(response.headers.get("Location"))


def _carries_credentials(kwargs: dict) -> bool:
    headers = {k.lower() for k in (kwargs.get("headers") or {})}
    return kwargs.get("auth") is not None or "authorization" in headers


class HttpClient:
    """Outgoing requests with calsync's rules for one provider instance: requests' request and
    response types over the process's shared adapter (its kept-alive connections).

    ``budget_ends_at`` (``time.monotonic()`` based), when set, ends every request at that moment
    at the latest: a sync's wall-clock budget.
    """

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        backoff: float = 0.5,
        allow_private: bool = False,
        deadline: float = 60.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ca_file: str | None = None,
        pool_size: int = 10,
        per_host: int = 4,
    ):
        """``ca_file``: trust this CA bundle instead of the system's (a server with its own CA).
        ``pool_size``: idle connections kept per host (one per worker thread is enough).
        ``per_host``: requests of the process in flight at once to one host (with this limit)."""
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self.per_host = per_host
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.budget_ends_at: float | None = None
        self.budget_text = ""
        self._count = 0
        self._lock = threading.Lock()
        # What a requests Session would keep for it: its default headers and the cookies answers set.
        # Nothing from the environment (proxies, .netrc): the guard decides where a request goes.
        self.headers = CaseInsensitiveDict(_DEFAULT_HEADERS)
        self.cookies = RequestsCookieJar()
        self._adapter = _shared_adapter(allow_private, ca_file, retries, backoff, max(pool_size, 1))

    @classmethod
    def from_settings(cls, settings) -> HttpClient:
        return cls(
            timeout=settings.http_timeout,
            retries=settings.http_retries,
            backoff=settings.http_backoff,
            allow_private=settings.allow_private_urls,
            deadline=getattr(settings, "http_deadline", 60.0),
            max_bytes=getattr(settings, "http_max_bytes", DEFAULT_MAX_BYTES),
            pool_size=getattr(settings, "workers", 10),
            per_host=getattr(settings, "http_per_host", 4),
        )

    def _count_response(self, response, *args, **kwargs):
        # Counts answered requests, retries included: every one cost the provider's quota.
        retries = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        with self._lock:
            self._count += 1 + len(retries)

    @property
    def requests_made(self) -> int:
        return self._count

    def set_budget(self, seconds: float, what: str) -> None:
        """Every request from now on ends ``seconds`` from now at the latest (a sync's budget)."""
        self.budget_ends_at = time.monotonic() + seconds
        self.budget_text = what

    def _ends_at(self) -> tuple[float, str]:
        now = time.monotonic()
        ends, why = now + self.deadline, f"did not finish within {self.deadline:g} s"
        if self.budget_ends_at is not None and self.budget_ends_at < ends:
            ends, why = self.budget_ends_at, self.budget_text or "ran past the sync's time budget"
        return ends, why

    def request(self, method: str, url: str, *, follow_redirects: bool = True, max_bytes: int | None = None, **kwargs) -> requests.Response:
        """One request (redirects followed hop by hop through the guard), its body read and capped.

        Raises URLNotAllowed, DeadlineExceeded, AnswerTooLarge, CredentialsRedirect or requests'
        own exceptions (ConnectionError, Timeout); HTTP error statuses are returned, not raised.
        """
        kwargs.pop("stream", None)
        if "verify" in kwargs or "cert" in kwargs:
            # urllib3 would load them into the TLS context every client shares: trust is set per
            # client (``ca_file``), never per request.
            raise TypeError("HttpClient.request takes no verify/cert: give the client a ca_file")
        kwargs.setdefault("timeout", self.timeout)
        cap = self.max_bytes if max_bytes is None else max_bytes
        ends_at, why = self._ends_at()
        if ends_at <= time.monotonic():
            raise DeadlineExceeded(why)
        origin = _origin(url)
        with netguard.deadline(ends_at):
            for _ in range(MAX_REDIRECTS + 1):
                netguard.check_shape(url)
                slots = _slots(origin, self.per_host)
                if not slots.acquire(timeout=max(0.0, ends_at - time.monotonic())):
                    raise DeadlineExceeded(f"{why} (waiting for one of the {self.per_host} requests in flight to {origin[1]} to end)")
                try:
                    response = self._answered(method, url, kwargs, cap, why, follow_redirects)
                finally:
                    slots.release()
                if not _redirects(response, follow_redirects):
                    return response
                target = urljoin(url, response.headers["Location"])
                new = _origin(target)
                if new != origin and _carries_credentials(kwargs):
                    upgrade = new[1] == origin[1] and new[0] == "https"
                    if not upgrade:
                        raise CredentialsRedirect(urlsplit(target).netloc)
                url, origin = target, new
                if response.status_code == 303:
                    method, kwargs = "GET", {k: v for k, v in kwargs.items() if k != "data"}
        raise requests.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _answered(self, method: str, url: str, kwargs: dict, cap: int, why: str, follow_redirects: bool) -> requests.Response:
        """One hop: the answer with its body read (a redirect's closed unread)."""
        try:
            response = self._send(method, url, kwargs)
        except requests.RequestException:
            with self._lock:
                self._count += 1  # no answer, but the provider saw the attempt
            if netguard.expired():
                raise DeadlineExceeded(why) from None
            raise
        except TimeoutError:
            raise DeadlineExceeded(why) from None
        if _redirects(response, follow_redirects):
            response.close()
            return response
        try:
            self._read_body(response, cap)
        except TimeoutError:
            raise DeadlineExceeded(why) from None
        return response

    def _send(self, method: str, url: str, kwargs: dict) -> requests.Response:
        """One request; sent once more on a new connection when a kept-alive one turns out closed
        by the server before it answered (it never saw the request: the retry rules do not apply)."""
        request = self._prepare(method, url, kwargs)
        try:
            return self._transmit(request, kwargs["timeout"])
        except requests.ConnectionError as exc:
            if not _closed_under_us(exc) or netguard.expired():
                raise
        return self._transmit(request, kwargs["timeout"])  # its body is bytes: sent again as it was

    # What requests' Session.request and Session.send do for a request, less what calsync never uses:
    # no environment (proxies, .netrc: trust_env is off), no redirects (followed in request()), one
    # response hook (the count). A no-change probe is one request; requests' merging of settings
    # cost about a tenth of its CPU. The request is prepared by requests' own steps, in its order.
    _TAKES = frozenset(("headers", "data", "json", "params", "auth", "timeout"))

    def _prepare(self, method: str, url: str, kwargs: dict) -> requests.PreparedRequest:
        unknown = set(kwargs) - self._TAKES
        if unknown:
            raise TypeError(f"HttpClient.request got unexpected arguments: {', '.join(sorted(unknown))}")
        headers = CaseInsensitiveDict(self.headers)
        for name, value in (kwargs.get("headers") or {}).items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        p = requests.PreparedRequest()
        p.prepare_method(method)
        p.prepare_url(url, kwargs.get("params"))
        p.prepare_headers(headers)
        if self.cookies:  # what an earlier answer of this client set
            p.prepare_cookies(self.cookies)
        p.prepare_body(kwargs.get("data"), None, kwargs.get("json"))
        p.prepare_auth(kwargs.get("auth"), url)
        return p

    def _transmit(self, request: requests.PreparedRequest, timeout) -> requests.Response:
        response = self._adapter.send(request, stream=True, timeout=timeout, verify=True, cert=None, proxies={})
        self._count_response(response)
        if "Set-Cookie" in response.headers:
            extract_cookies_to_jar(self.cookies, request, response.raw)
        return response

    @staticmethod
    def _read_body(response: requests.Response, cap: int) -> None:
        """Read the streamed body into ``response`` (``.content`` works), at most ``cap`` bytes
        decompressed; an error body is cut at ERROR_BODY_BYTES instead of failing."""
        error = response.status_code >= 400
        limit = min(cap, ERROR_BODY_BYTES) if error else cap
        declared = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if not error and declared.isdigit() and int(declared) > limit and not encoded:
            response.close()
            raise AnswerTooLarge(f"the answer is larger than the {limit:,}-byte limit ({int(declared):,} bytes)", declared=int(declared))
        chunks, size = [], 0
        try:
            for chunk in response.raw.stream(CHUNK, decode_content=True):
                size += len(chunk)
                if size > limit:
                    if error:
                        chunks.append(chunk[: limit - (size - len(chunk))])
                        break
                    raise AnswerTooLarge(f"the answer is larger than the {limit:,}-byte limit")
                chunks.append(chunk)
        except (TimeoutError, AnswerTooLarge):
            raise
        except Exception as exc:  # noqa: BLE001 — urllib3's read errors (timeout, protocol, decoding) as requests' kind
            if netguard.expired():
                raise TimeoutError("the request ran past its deadline") from None
            if isinstance(exc, ReadTimeoutError):
                raise requests.ReadTimeout("the answer stopped coming") from None
            raise requests.ConnectionError(f"the answer broke off: {exc.__class__.__name__}") from None
        finally:
            response.close()
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]  # requests' private flag, set as requests sets it after a read

    def close(self) -> None:
        # The adapter (and its kept-alive connections) belongs to every client of the process.
        self.cookies.clear()
