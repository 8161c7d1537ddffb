"""Outgoing HTTP for providers: timeouts, retries with backoff, a request count,
and the guard that keeps user-supplied URLs off loopback and private networks.

Retries are urllib3's (``Retry``: exponential backoff, ``Retry-After``
honoured up to a cap); redirects are followed here, one hop at a time, so each
target passes the private-network guard before it is contacted.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "calsync/0.1 (+calendar sync)"
MAX_REDIRECTS = 5
RETRY_AFTER_CAP = 30.0
RETRY_STATUSES = (429, 500, 502, 503, 504)


class URLNotAllowed(Exception):
    """The URL is not one calsync may fetch; ``str()`` says why in plain words."""


class _CappedRetry(Retry):
    """A Retry that never sleeps longer than RETRY_AFTER_CAP for one Retry-After."""

    def get_retry_after(self, response):
        value = super().get_retry_after(response)
        return None if value is None else min(value, RETRY_AFTER_CAP)


def check_url(url: str, allow_private: bool) -> None:
    """Raise URLNotAllowed unless ``url`` is http(s) and (unless allowed) public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise URLNotAllowed(f"only http:// and https:// URLs are supported, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise URLNotAllowed("the URL has no host name")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise URLNotAllowed(f"the host name {parts.hostname} could not be resolved") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise URLNotAllowed(
                f"{parts.hostname} points at a private or loopback address ({address}); "
                "calsync does not fetch those unless CALSYNC_ALLOW_PRIVATE_URLS is on"
            )


def is_timeout(exc: BaseException) -> bool:
    """True for a timeout, also when urllib3's retries wrapped it into a ConnectionError."""
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    if isinstance(exc, requests.Timeout):
        return True
    inner = exc.args[0] if exc.args else None
    return isinstance(inner, MaxRetryError) and isinstance(inner.reason, ReadTimeoutError)


class HttpClient:
    """A requests session with calsync's rules, shared by one provider instance."""

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        retries: int = 2,
        backoff: float = 0.5,
        allow_private: bool = False,
    ):
        self.timeout = timeout
        self.allow_private = allow_private
        self._count = 0
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
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
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.hooks["response"].append(self._count_response)

    @classmethod
    def from_settings(cls, settings) -> "HttpClient":
        return cls(
            timeout=settings.http_timeout,
            retries=settings.http_retries,
            backoff=settings.http_backoff,
            allow_private=settings.allow_private_urls,
        )

    def _count_response(self, response, *args, **kwargs):
        # Counts answered requests, retries included: every one cost the provider's quota.
        retries = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        with self._lock:
            self._count += 1 + len(retries)

    @property
    def requests_made(self) -> int:
        return self._count

    def request(self, method: str, url: str, *, follow_redirects: bool = True, **kwargs) -> requests.Response:
        """One request (redirects followed hop by hop through the guard).

        Raises URLNotAllowed or requests' own exceptions (ConnectionError,
        Timeout); HTTP error statuses are returned, not raised.
        """
        kwargs.setdefault("timeout", self.timeout)
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.allow_private)
            try:
                response = self.session.request(method, url, allow_redirects=False, **kwargs)
            except requests.RequestException:
                with self._lock:
                    self._count += 1
                raise
            if not follow_redirects or response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("Location")
            if not location:
                return response
            response.close()
            url = urljoin(url, location)
            if response.status_code == 303:
                method, kwargs = "GET", {k: v for k, v in kwargs.items() if k != "data"}
        raise requests.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        self.session.close()
