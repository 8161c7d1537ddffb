"""Where and how long: the sockets outgoing provider requests run on.

- **Deadlines**: :func:`deadline` sets, for this thread, the moment the current request must be
  done by. The sockets calsync opens (:class:`DeadlineSocket`, :class:`DeadlineSSLSocket`) shrink
  their own timeout to what is left of it before every read, write and TLS handshake, so a
  server that trickles one byte every few seconds ends at the deadline like silence does.
- **Where**: :func:`guarded_socket` resolves a name once and connects only to an address that
  passes the private-network check (unless ``CALSYNC_ALLOW_PRIVATE_URLS``): the address checked
  is the address connected to, so DNS rebinding cannot slip through. :class:`GuardedAdapter`
  puts both rules under requests.
- :func:`check_shape` / :func:`check_url` say at once what is wrong with a URL a user typed.

:mod:`core.http` builds the client (redirects, credentials, caps, retries) on top of this.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.ssl_ import create_urllib3_context


class URLNotAllowed(Exception):
    """The URL is not one calsync may fetch; ``str()`` says why in plain words."""


# -- the deadline of the request this thread is making -------------------------------------------

_state = threading.local()


def time_left() -> float | None:
    """Seconds to this thread's request deadline (negative once past), None without one."""
    ends = getattr(_state, "ends_at", None)
    return None if ends is None else ends - time.monotonic()


def left(otherwise: float) -> float:
    """Seconds left before the deadline (never negative); ``otherwise`` when there is none."""
    remaining = time_left()
    return otherwise if remaining is None else max(remaining, 0.0)


def expired() -> bool:
    remaining = time_left()
    return remaining is not None and remaining <= 0


@contextlib.contextmanager
def deadline(ends_at: float):
    """Requests made by this thread inside the block end by ``ends_at`` (monotonic) at the latest."""
    previous = getattr(_state, "ends_at", None)
    _state.ends_at = ends_at if previous is None else min(previous, ends_at)
    try:
        yield
    finally:
        _state.ends_at = previous


def _armed(sock, op_timeout: float | None) -> None:
    """Before a read or write: the socket may wait only for what is left of the deadline."""
    remaining = time_left()
    if remaining is None:
        return
    if remaining <= 0:
        raise TimeoutError("the request ran past its deadline")
    sock.settimeout(remaining if op_timeout is None else min(op_timeout, remaining))


class _DeadlineMixin:
    """Every blocking call of the socket ends by the thread's request deadline.

    urllib3 sets the per-read timeout with ``settimeout``: it is kept as ``op_timeout`` and each
    call may wait for it or for what is left of the deadline, whichever is shorter.
    """

    op_timeout: float | None = None

    def settimeout(self, value):
        if not getattr(self, "_arming", False):
            self.op_timeout = value
        super().settimeout(value)

    def _arm(self):
        self._arming = True
        try:
            _armed(self, self.op_timeout)
        finally:
            self._arming = False


def _bounded(name: str):
    def method(self, *args):
        self._arm()
        return getattr(super(_DeadlineMixin, self), name)(*args)

    method.__name__ = name
    return method


for _name in ("recv", "recv_into", "send", "sendall", "read", "write", "do_handshake"):
    setattr(_DeadlineMixin, _name, _bounded(_name))


class DeadlineSocket(_DeadlineMixin, socket.socket):
    """A plain socket under the deadline (what guarded_socket connects)."""


class DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    """The TLS socket over it, under the same rule (the handshake included)."""


# -- connecting only where calsync may go ------------------------------------------------------------


def _allowed(address: str, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return allow_private or (ip.is_global and not ip.is_multicast)


def _refusal(host: str, address: str) -> URLNotAllowed:
    return URLNotAllowed(
        f"{host} points at a private or loopback address ({address}); calsync does not fetch those unless CALSYNC_ALLOW_PRIVATE_URLS is on"
    )


def guarded_socket(host: str, port: int, timeout, allow_private: bool, socket_options=None) -> socket.socket:
    """Resolve ``host`` once and connect to an address that passes the guard (pinned: the
    address checked is the address connected to)."""
    if host.startswith("["):
        host = host.strip("[]")
    refused, error = "", None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM):
        ip = str(address[0])  # an AF_INET/AF_INET6 address: (host, port, ...)
        if not _allowed(ip, allow_private):
            refused = ip
            continue
        sock = DeadlineSocket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            connect_timeout = timeout if isinstance(timeout, (int, float)) else None  # urllib3 may pass a sentinel
            sock.settimeout(connect_timeout)
            _armed(sock, connect_timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    if error is not None:
        raise error
    if refused:
        raise _refusal(host, refused)
    raise OSError(f"{host} has no address")


class _GuardedMixin:
    allow_private = False  # set per client (a subclass per HttpClient)

    def _new_conn(self):
        try:
            return guarded_socket(self._dns_host, self.port, self.timeout, self.allow_private, self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: loading the system's CA store costs ~35 ms, which was most of a
    no-change sync's CPU when every sync built its own (an SSLContext is safe to share)."""
    context = create_urllib3_context()
    context.load_default_certs()
    context.sslsocket_class = DeadlineSSLSocket
    return context


@functools.lru_cache(maxsize=8)
def _own_ssl_context(ca_file: str) -> ssl.SSLContext:
    """A context that trusts ``ca_file`` only (one per file, never the shared one: urllib3 would add to it)."""
    context = create_urllib3_context()
    context.load_verify_locations(cafile=ca_file)
    context.sslsocket_class = DeadlineSSLSocket
    return context


class _TLSOnFirstUse:
    """The TLS context is taken when the first https connection is made, not when the pool is:
    a process that only speaks http (the CLI against a server on its own network) never loads
    the CA store."""

    ca_file: str | None = None

    def connect(self):
        if self.ssl_context is None:
            self.ssl_context = _ssl_context() if self.ca_file is None else _own_ssl_context(self.ca_file)
        return super().connect()


class GuardedAdapter(HTTPAdapter):
    """requests' adapter with calsync's connection classes (guard, pinning, deadlines)."""

    def __init__(self, allow_private: bool, ca_file: str | None = None, **kwargs):
        self.allow_private = allow_private
        self.ca_file = ca_file
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.allow_private, self.ca_file)


@functools.lru_cache(maxsize=8)
def _pool_classes(allow_private: bool, ca_file: str | None) -> dict:
    """urllib3's pools with the guarded connections, one pair per rule (built once, not per client)."""
    flag = {"allow_private": allow_private}
    http_conn = type("GuardedHTTPConnection", (_GuardedMixin, HTTPConnection), flag)
    https_conn = type("GuardedHTTPSConnection", (_GuardedMixin, _TLSOnFirstUse, HTTPSConnection), {**flag, "ca_file": ca_file})
    return {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


def check_shape(url: str) -> None:
    """Raise URLNotAllowed unless ``url`` is http(s) with a host and without credentials in it.

    A URL Python cannot even split (an unclosed ``[``, a port over 65535) is refused the same way,
    never as a ValueError from deep inside a request."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port out of range or not a number
    except ValueError:
        raise URLNotAllowed("the address is not a valid URL (check the host name and the port)") from None
    if parts.scheme not in ("http", "https"):
        raise URLNotAllowed(f"only http:// and https:// URLs are supported, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise URLNotAllowed("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        raise URLNotAllowed(
            "the URL holds a user name or password: leave them out (calsync reads the password from stdin or the form, never from a URL)"
        )


def check_url(url: str, allow_private: bool) -> None:
    """Raise URLNotAllowed unless ``url`` is http(s), without credentials, and (unless allowed) public.

    For what a user types, to say at once what is wrong; every request is checked again on the
    address it connects to.
    """
    check_shape(url)
    parts = urlsplit(url)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise URLNotAllowed(f"the host name {parts.hostname} could not be resolved") from None
    for info in infos:
        ip = str(info[4][0])
        if not _allowed(ip, allow_private=False):
            raise _refusal(str(parts.hostname), ip.split("%")[0])


def bounded(session, allow_private: bool = True):
    """Put another library's requests session (an OAuth client, the host webhook) on calsync's sockets.

    Its requests then end by :func:`deadline` like providers' do; ``allow_private`` stays on for
    endpoints an operator configured (they may well be on the private network).
    """
    adapter = GuardedAdapter(allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session


def within(seconds: float):
    """A :func:`deadline` ``seconds`` from now."""
    return deadline(time.monotonic() + seconds)
