"""Real CalDAV servers (Radicale 3.x, Xandikos 0.4.x) for the test-suite.

Each server runs as a subprocess of ``sys.executable`` (so the packages of the
running virtualenv are used), listens on ``127.0.0.1`` on a free port and keeps
everything - storage, config, password files and the log file with the
server's stdout/stderr - inside the ``root`` directory it is given (use a fresh
``tmp_path`` per server).

Both kinds are driven through :class:`CalDAVServer`:

* ``base_url`` is what a user types as the CalDAV URL; discovery works from it
  (``/.well-known/caldav`` redirects to ``/``; PROPFIND on ``/`` gives
  ``current-user-principal``; the principal gives ``calendar-home-set``).
* ``username`` / ``password`` are the one test user's credentials.
* The *admin helpers* (``make_calendar``, ``delete_calendar``, ``put_event``,
  ``delete_event``, ``list_events``) simulate "the world": they authenticate as
  a separate **admin account** (``admin_username`` / ``admin_password``) that
  may read and write the user's collections, so they keep working after
  :meth:`CalDAVServer.set_password` or :meth:`CalDAVServer.set_read_only`.
  On both servers the stored data is the same whichever account wrote it.
* ``set_password`` changes the user's password on the server (the old one
  then gets 401); ``set_read_only`` lets the user read but not write.

The user's calendar home starts with **no calendars**: neither server is told
to create default collections (Radicale: no ``predefined_collections``;
Xandikos: the principal is created with ``create_defaults=False``, which
makes only the empty ``calendars/`` and ``contacts/`` home collections).

Layout on the server:

* Radicale: principal and calendar home ``/alice/``, calendars ``/alice/<name>/``.
* Xandikos: principal ``/alice/``, calendar home ``/alice/calendars/``,
  calendars ``/alice/calendars/<name>/``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
from pathlib import Path
from typing import BinaryIO, Self
from xml.etree import ElementTree as ET

import requests

HOST = "127.0.0.1"
HTTP_TIMEOUT = 5.0  # every admin HTTP request
START_TIMEOUT = 20.0  # until the server answers HTTP
STOP_TIMEOUT = 10.0  # terminate -> kill

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` atomically so a server never reads a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _check_local(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname
    if host != HOST:
        raise ValueError(f"refusing non-local URL {url!r}")


class ServerError(RuntimeError):
    """The server could not be started, or an admin request failed."""


class CalDAVServer:
    """A real CalDAV server in a subprocess (see module docstring).

    Subclasses set ``kind`` and implement ``_command``, ``_prepare``,
    ``calendar_home_url`` and the two permission helpers.
    """

    kind: str = ""

    def __init__(self, root: Path, username: str = "alice", password: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password or "pw-" + secrets.token_hex(8)
        self.admin_username = "admin"
        self.admin_password = "admin-" + secrets.token_hex(8)
        self.read_only = False
        self.port = free_port()
        self.log_path = self.root / "server.log"
        self.proc: subprocess.Popen | None = None
        self._log_file: BinaryIO | None = None
        self._prepared = False

    # ------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    @property
    def principal_url(self) -> str:
        return f"{self.base_url}{self.username}/"

    @property
    def calendar_home_url(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def user_auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def admin_auth(self) -> tuple[str, str]:
        return (self.admin_username, self.admin_password)

    # ------------------------------------------------------------ lifecycle

    def _prepare(self) -> None:  # pragma: no cover - abstract
        """Write config/password/rights files (called before every start)."""
        raise NotImplementedError

    def _command(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_first_start(self) -> None:
        """Hook run once the server answers for the first time."""

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Keep both servers away from the real user's config / data dirs.
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local/share"),
            XDG_CACHE_HOME=str(home / ".cache"),
            PYTHONUNBUFFERED="1",
        )
        for var in ("RADICALE_CONFIG", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(var, None)
        env["NO_PROXY"] = env["no_proxy"] = HOST
        return env

    def start(self) -> None:
        """Start the subprocess and wait (<= 20 s) until it answers HTTP.

        On the very first start a port collision (another process grabbed the
        "free" port) is retried with a new port; restarts keep the port.
        """
        if self.running:
            return
        first = not self._prepared
        attempts = 3 if first else 1
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                break
            except ServerError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
        if first:
            self._after_first_start()

    def _spawn_and_wait(self) -> None:
        self._prepare()
        self._prepared = True
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 — the server writes to it until stop() closes it
        self._log_file.write(f"\n==== start {self.kind} on port {self.port} ====\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            self._command(),
            cwd=self.root,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode} during startup; log tail:\n{self.log_tail()}")
            try:
                requests.request("OPTIONS", self.base_url, timeout=1.0, allow_redirects=False)
                return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"{self.kind} did not answer within {START_TIMEOUT}s; log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop our own subprocess by its PID (terminate, wait, kill). Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    # ------------------------------------------------------------ HTTP

    def request(self, method: str, url: str, *, auth: tuple[str, str] | None = None, as_user: bool = False, **kw) -> requests.Response:
        """One HTTP request to this server (admin account unless ``as_user``)."""
        _check_local(url)
        if auth is None:
            auth = self.user_auth if as_user else self.admin_auth
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, url, auth=auth, **kw)

    def _expect(self, resp: requests.Response, ok: tuple[int, ...], what: str) -> None:
        if resp.status_code not in ok:
            raise ServerError(f"{self.kind}: {what} -> {resp.status_code} {resp.reason}: {resp.text[:500]}")

    def _abs(self, href: str) -> str:
        return urllib.parse.urljoin(self.base_url, href)

    # ------------------------------------------------------------ admin helpers

    def make_calendar(self, name: str, display_name: str | None = None) -> str:
        """MKCALENDAR ``name`` under the user's calendar home; returns its URL."""
        url = f"{self.calendar_home_url}{urllib.parse.quote(name)}/"
        body = None
        headers = {}
        if display_name is not None:
            mk = ET.Element(f"{{{CALDAV}}}mkcalendar")
            prop = ET.SubElement(ET.SubElement(mk, f"{{{DAV}}}set"), f"{{{DAV}}}prop")
            ET.SubElement(prop, f"{{{DAV}}}displayname").text = display_name
            body = ET.tostring(mk, encoding="utf-8", xml_declaration=True)
            headers["Content-Type"] = "application/xml; charset=utf-8"
        resp = self.request("MKCALENDAR", url, data=body, headers=headers)
        self._expect(resp, (200, 201), f"MKCALENDAR {url}")
        return url

    def delete_calendar(self, url: str) -> None:
        resp = self.request("DELETE", url)
        self._expect(resp, (200, 204), f"DELETE {url}")

    def put_event(self, calendar_url: str, filename: str, ics: str) -> str:
        """PUT raw iCalendar text; returns the object's absolute URL."""
        url = urllib.parse.urljoin(calendar_url, urllib.parse.quote(filename))
        resp = self.request("PUT", url, data=ics.encode("utf-8"), headers={"Content-Type": "text/calendar; charset=utf-8"})
        self._expect(resp, (200, 201, 204), f"PUT {url}")
        return url

    def delete_event(self, href_url: str) -> None:
        resp = self.request("DELETE", self._abs(href_url))
        self._expect(resp, (200, 204), f"DELETE {href_url}")

    def list_hrefs(self, calendar_url: str) -> dict[str, str | None]:
        """Absolute URL -> ETag of every non-collection member (PROPFIND depth 1)."""
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getetag/></D:prop></D:propfind>'
        )
        resp = self.request("PROPFIND", calendar_url, data=body, headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        self._expect(resp, (207,), f"PROPFIND {calendar_url}")
        own_path = urllib.parse.urlsplit(calendar_url).path.rstrip("/")
        out: dict[str, str | None] = {}
        for r in ET.fromstring(resp.content).iter(f"{{{DAV}}}response"):
            href = urllib.parse.unquote(r.findtext(f"{{{DAV}}}href", "").strip())
            url = self._abs(href)
            if urllib.parse.urlsplit(url).path.rstrip("/") == own_path:
                continue
            if r.find(f".//{{{DAV}}}resourcetype/{{{DAV}}}collection") is not None:
                continue
            out[url] = r.findtext(f".//{{{DAV}}}getetag")
        return out

    def list_events(self, calendar_url: str) -> dict[str, str]:
        """Absolute URL -> iCalendar text of every object in the calendar."""
        out: dict[str, str] = {}
        for url in self.list_hrefs(calendar_url):
            resp = self.request("GET", url)
            self._expect(resp, (200,), f"GET {url}")
            out[url] = resp.content.decode("utf-8")
        return out

    def set_password(self, new_password: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def set_read_only(self, read_only: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} pid={self.pid}>"


# ====================================================================== Radicale


class RadicaleServer(CalDAVServer):
    """Radicale 3.x with htpasswd (plain) auth and ``[rights] type = from_file``.

    Radicale re-reads the htpasswd file on every request (``htpasswd_cache =
    False``, ``cache_logins = False``), so :meth:`set_password` needs no
    restart.  The rights file is parsed only once, in ``Rights.__init__``, so
    :meth:`set_read_only` rewrites it and restarts the server (same port).

    Rights (rw):  ``/`` R, ``/alice/`` RW, ``/alice/<cal>/`` rw (+ items).
    Read-only:    ``/`` R, ``/alice/`` R,  ``/alice/<cal>/`` r.
    ``admin`` gets RrWw everywhere.  Auth failure delay is set to 0.
    """

    kind = "radicale"

    def __init__(self, root: Path, username: str = "alice", password: str | None = None, max_content_length: int | None = None) -> None:
        super().__init__(root, username, password)
        # Radicale answers 413 to a request body larger than this: a real server refusing one event.
        self.max_content_length = max_content_length

    @property
    def calendar_home_url(self) -> str:
        return self.principal_url

    def _write_htpasswd(self) -> None:
        _write_atomic(self.root / "htpasswd", f"{self.username}:{self.password}\n{self.admin_username}:{self.admin_password}\n")

    def _write_rights(self) -> None:
        user_principal = "R" if self.read_only else "RW"
        user_calendar = "r" if self.read_only else "rw"
        admin = self.admin_username
        _write_atomic(
            self.root / "rights",
            textwrap.dedent(f"""\
            # generated by tests/servers.py (read_only={self.read_only})
            [admin]
            user: {admin}
            collection: .*
            permissions: RrWw

            [root]
            user: .+
            collection:
            permissions: R

            [principal]
            user: .+
            collection: {{user}}
            permissions: {user_principal}

            [calendars]
            user: .+
            collection: {{user}}/[^/]+
            permissions: {user_calendar}
            """),
        )

    def _prepare(self) -> None:
        (self.root / "collections").mkdir(exist_ok=True)
        self._write_htpasswd()
        self._write_rights()
        _write_atomic(
            self.root / "config",
            textwrap.dedent(f"""\
            [server]
            hosts = {HOST}:{self.port}
            delay_on_error = 0
            {f"max_content_length = {self.max_content_length}" if self.max_content_length else ""}

            [auth]
            type = htpasswd
            htpasswd_filename = {self.root / "htpasswd"}
            htpasswd_encryption = plain
            htpasswd_cache = False
            cache_logins = False
            delay = 0

            [rights]
            type = from_file
            file = {self.root / "rights"}

            [storage]
            filesystem_folder = {self.root / "collections"}

            [web]
            type = none

            [logging]
            level = info
            """),
        )

    def _command(self) -> list[str]:
        return [sys.executable, "-P", "-m", "radicale", "--config", str(self.root / "config")]

    def _after_first_start(self) -> None:
        # Radicale creates a user's principal collection on that user's first
        # authenticated request; do it now so the admin can MKCALENDAR in it.
        resp = self.request("PROPFIND", self.principal_url, as_user=True, headers={"Depth": "0"})
        self._expect(resp, (207,), "initial PROPFIND of the principal")

    def set_password(self, new_password: str) -> None:
        self.password = new_password
        self._write_htpasswd()  # re-read by Radicale on every request

    def set_read_only(self, read_only: bool) -> None:
        self.read_only = read_only
        self._write_rights()
        if self.running:
            self.restart()  # rights file is only read at startup


# ====================================================================== Xandikos

_XANDIKOS_SCRIPT = r'''
"""Xandikos behind a Basic-auth / read-only WSGI middleware (generated by tests/servers.py)."""
import base64, binascii, hmac, io, logging, os, sys, threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from xml.etree import ElementTree as ET

root, host, port, username, admin_name = sys.argv[1:6]
port = int(port)
STORE = os.path.join(root, "storage")
PASSWORD_FILE = os.path.join(root, "user.password")
ADMIN_PASSWORD_FILE = os.path.join(root, "admin.password")
READ_ONLY_FLAG = os.path.join(root, "read-only")
PRINCIPAL = "/%s/" % username
WRITE_METHODS = {"PUT", "DELETE", "MKCALENDAR", "MKCOL", "PROPPATCH", "MOVE", "COPY", "POST"}
FORBIDDEN_BODY = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                  b'<D:error xmlns:D="DAV:"><D:need-privileges/></D:error>')

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

from xandikos.web import SingleUserFilesystemBackend, XandikosApp
from xandikos.wsgi_helpers import WellknownRedirector

os.makedirs(STORE, exist_ok=True)
backend = SingleUserFilesystemBackend(STORE)
backend._mark_as_principal(PRINCIPAL)
if not backend.get_resource(PRINCIPAL):
    # principal + empty calendars/ and contacts/ homes, no default calendar
    backend.create_principal(PRINCIPAL, create_defaults=False)
dav_app = WellknownRedirector(XandikosApp(backend, current_user_principal=PRINCIPAL), "/")

LOCK = threading.Lock()   # xandikos' store cache is not meant for threads


def read_secret(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def check_credentials(environ):
    """Return the authenticated name, or None.  Files are re-read every time."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        name, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep:
        return None
    for expected_name, path in ((username, PASSWORD_FILE), (admin_name, ADMIN_PASSWORD_FILE)):
        if name == expected_name and hmac.compare_digest(
                password.encode("utf-8"), read_secret(path).encode("utf-8")):
            return name
    return None


def buffer_body(environ):
    """wsgiref hands the raw socket to the app; xandikos reads to EOF. Buffer it."""
    stream = environ["wsgi.input"]
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        data = bytearray()
        while True:
            size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while stream.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            data += stream.read(size)
            stream.readline()
        body = bytes(data)
        del environ["HTTP_TRANSFER_ENCODING"]
    else:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = stream.read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def read_only_privileges(body):
    """Rewrite every current-user-privilege-set to read-only privileges."""
    try:
        tree = ET.fromstring(body)
    except ET.ParseError:
        return body
    changed = False
    for cups in tree.iter("{DAV:}current-user-privilege-set"):
        for child in list(cups):
            cups.remove(child)
        for priv in ("read", "read-current-user-privilege-set"):
            ET.SubElement(ET.SubElement(cups, "{DAV:}privilege"), "{DAV:}" + priv)
        changed = True
    if not changed:
        return body
    return ET.tostring(tree, encoding="utf-8", xml_declaration=True)


def simple(start_response, status, body, headers=()):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + list(headers))
    return [body]


def app(environ, start_response):
    if environ.get("PATH_INFO", "").rstrip("/") in ("/.well-known/caldav", "/.well-known/carddav"):
        return dav_app(environ, start_response)     # RFC 6764 redirect, no auth needed
    user = check_credentials(environ)
    if user is None:
        return simple(start_response, "401 Unauthorized", b"Authentication required.\n",
                      [("WWW-Authenticate", 'Basic realm="xandikos"')])
    buffer_body(environ)
    environ["REMOTE_USER"] = user
    read_only = user == username and os.path.exists(READ_ONLY_FLAG)
    if read_only and environ["REQUEST_METHOD"].upper() in WRITE_METHODS:
        start_response("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8"),
                                         ("Content-Length", str(len(FORBIDDEN_BODY)))])
        return [FORBIDDEN_BODY]
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: captured.setdefault("early", []).append(data)

    with LOCK:
        result = dav_app(environ, capture)
        try:
            body = b"".join(captured.get("early", []) + [bytes(x) for x in result])
        finally:
            if hasattr(result, "close"):
                result.close()
    headers = captured["headers"]
    if read_only and environ["REQUEST_METHOD"].upper() == "PROPFIND" \
            and captured["status"].startswith("207"):
        body = read_only_privileges(body)
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(captured["status"], headers)
    return [body]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))


httpd = Server((host, port), Handler)
httpd.set_app(app)
logging.info("xandikos test server on http://%s:%d/ (principal %s)", host, port, PRINCIPAL)
try:
    httpd.serve_forever(poll_interval=0.1)
except KeyboardInterrupt:
    pass
'''


class XandikosServer(CalDAVServer):
    """Xandikos 0.4.x as a WSGI app in a wsgiref (threading) server script.

    Xandikos' own auth is not used; the generated script wraps
    ``XandikosApp`` (``SingleUserFilesystemBackend``, current-user-principal
    ``/alice/``, principal created with ``create_defaults=False``) in a
    middleware that

    * requires HTTP Basic auth against ``user.password`` / ``admin.password``
      (re-read on every request, so :meth:`set_password` needs no restart) and
      answers ``401`` with ``WWW-Authenticate: Basic realm="xandikos"``;
    * while the ``read-only`` flag file exists, answers the user's PUT, DELETE,
      MKCALENDAR, MKCOL, PROPPATCH, MOVE, COPY and POST with ``403`` and
      ``<D:error xmlns:D="DAV:"><D:need-privileges/></D:error>``, and rewrites
      ``current-user-privilege-set`` in PROPFIND answers to
      ``read`` + ``read-current-user-privilege-set`` (Xandikos itself always
      reports ``DAV:all``).  The admin account is never read-only.

    Requests are handled one at a time (a lock around the app).
    """

    kind = "xandikos"

    @property
    def calendar_home_url(self) -> str:
        return f"{self.principal_url}calendars/"

    def _write_passwords(self) -> None:
        _write_atomic(self.root / "user.password", self.password)
        _write_atomic(self.root / "admin.password", self.admin_password)

    def _prepare(self) -> None:
        script = self.root / "xandikos_server.py"
        script.write_text(_XANDIKOS_SCRIPT, encoding="utf-8")
        self._write_passwords()
        self._apply_read_only()

    def _apply_read_only(self) -> None:
        flag = self.root / "read-only"
        if self.read_only:
            flag.write_text("1")
        elif flag.exists():
            flag.unlink()

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-P",
            str(self.root / "xandikos_server.py"),
            str(self.root),
            HOST,
            str(self.port),
            self.username,
            self.admin_username,
        ]

    def set_password(self, new_password: str) -> None:
        self.password = new_password
        self._write_passwords()

    def set_read_only(self, read_only: bool) -> None:
        self.read_only = read_only
        self._apply_read_only()


SERVER_KINDS: dict[str, type[CalDAVServer]] = {
    "radicale": RadicaleServer,
    "xandikos": XandikosServer,
}


def start_server(kind: str, root: Path, **kwargs) -> CalDAVServer:
    """Construct the server of ``kind`` in ``root`` and start it."""
    try:
        cls = SERVER_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown server kind {kind!r}; expected one of {sorted(SERVER_KINDS)}") from None
    server = cls(Path(root), **kwargs)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
