"""Fixtures: a fresh database and data dir per test, and real CalDAV servers
(Radicale and Xandikos) started on 127.0.0.1 and stopped by their PID."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import start_server

from core import actions, clock, runtime
from core.config import load_settings

SERVER_KINDS = ["radicale", "xandikos"]


def wait_for(check, timeout: float = 10.0, what: str = "the condition"):
    """Poll ``check`` until it returns something true (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def make_env(tmp_path: Path, **extra) -> dict:
    env = {
        "CALSYNC_DATA_DIR": str(tmp_path / "var"),
        "CALSYNC_ALLOW_PRIVATE_URLS": "1",
        "CALSYNC_HTTP_RETRIES": "1",
        "CALSYNC_HTTP_BACKOFF": "0",
        "CALSYNC_HTTP_TIMEOUT": "5",
        "CALSYNC_WORKERS": "2",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def web_env(tmp_path: Path, **extra) -> dict:
    """``make_env`` plus a free port for calsync's web server, which every link names (CALSYNC_BASE_URL)."""
    from conftest_ports import free_port

    port = free_port()
    return make_env(tmp_path, CALSYNC_BASE_URL=f"http://127.0.0.1:{port}", CALSYNC_HTTP_HOST="127.0.0.1", CALSYNC_HTTP_PORT=port, **extra)


@contextlib.contextmanager
def started(env: dict):
    """A runtime for ``env`` (no .env file), closed afterwards, with the clock set back."""
    runtime_ = runtime.start(load_settings(env, read_dotenv=False))
    try:
        yield runtime_
    finally:
        runtime_.close()
        clock.set_now(None)


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


@pytest.fixture
def rt(env):
    runtime_ = runtime.start(load_settings(env, read_dotenv=False))
    yield runtime_
    runtime_.close()
    clock.set_now(None)


@pytest.fixture
def google():
    """The local Google stand-in (OAuth + Calendar API v3, push channels) for ada@example.com."""
    from fakes.google_api import FakeGoogle

    fake = FakeGoogle("ada@example.com").start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def graph():
    """The local Microsoft stand-in (identity platform + Graph v1.0 calendars, subscriptions)."""
    from fakes.microsoft_graph import GraphFake

    fake = GraphFake().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(params=SERVER_KINDS)
def caldav(request, tmp_path):
    server = start_server(request.param, tmp_path / request.param)
    try:
        yield server
    finally:
        server.stop()


class Story:
    """A staff member with one CalDAV connection, the way a user sets it up."""

    def __init__(self, rt, server):
        self.rt = rt
        self.server = server
        self.calendar_url = server.make_calendar("work", "Work")
        actions.add_staff(rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
        self.conn = actions.connect(
            rt,
            "ada@example.com",
            "caldav",
            url=server.base_url,
            username=server.username,
            password=server.password,
        )
        self.conn_id = self.conn["id"]

    def sync(self) -> dict:
        return actions.sync_now(self.rt, self.conn_id)[0]

    def status(self) -> dict:
        return actions.get_connection(self.rt, self.conn_id)

    def entries(self) -> list[dict]:
        return actions.list_entries(self.rt, self.conn_id)

    def book(self, start: dt.datetime, hours: float = 1, subject: str = "Coaching session") -> dict:
        return actions.book(self.rt, "ada@example.com", start.isoformat(), (start + dt.timedelta(hours=hours)).isoformat(), subject)

    def events(self) -> dict[str, str]:
        return self.server.list_events(self.calendar_url)


@pytest.fixture
def story(rt, caldav):
    return Story(rt, caldav)


def soon(days: int = 2, hour: int = 10) -> dt.datetime:
    base = clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=days)
    return base.replace(hour=hour)


def vevent(uid: str, start: dt.datetime, end: dt.datetime, summary: str, extra: str = "") -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//outside//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start.astimezone(dt.UTC).strftime(fmt)}\r\n"
        f"DTEND:{end.astimezone(dt.UTC).strftime(fmt)}\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture(scope="session")
def postgres():
    from pg import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_rt(postgres, tmp_path, request):
    import uuid

    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    url = postgres.create_database(name)
    runtime_ = runtime.start(load_settings(make_env(tmp_path, CALSYNC_DATABASE_URL=url), read_dotenv=False))
    yield runtime_
    runtime_.close()


class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives, with its
    envelope recipients (smtplib turns a Bcc header into envelope recipients and drops the
    header); it refuses the addresses in ``unknown`` with 550, as a server does for a mailbox
    that does not exist."""

    def __init__(self) -> None:
        from conftest_ports import free_port

        self.messages: list = []
        self.envelopes: list[list[str]] = []
        self.unknown: set[str] = set()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        import email
        from email import policy

        from aiosmtpd.controller import Controller

        mailbox = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in mailbox.unknown:
                    return "550 5.1.1 no such mailbox"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                mailbox.envelopes.append(list(envelope.rcpt_tos))
                mailbox.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list:
        import time

        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def mail_rt(tmp_path, mailbox):
    """A runtime whose e-mail goes to the loopback SMTP server."""
    runtime_ = runtime.start(
        load_settings(
            make_env(tmp_path, CALSYNC_SMTP_URL=mailbox.url, CALSYNC_MAIL_FROM="Calsync <calsync@example.com>"), read_dotenv=False
        )
    )
    yield runtime_
    runtime_.close()
    clock.set_now(None)


@pytest.fixture
def mail_web_rt(tmp_path, mailbox):
    """A runtime that mails through the loopback SMTP server and whose links name its own web server."""
    with started(web_env(tmp_path, CALSYNC_SMTP_URL=mailbox.url, CALSYNC_MAIL_FROM="Calsync <calsync@example.com>")) as rt:
        yield rt


@pytest.fixture
def radicale(tmp_path):
    """One Radicale on 127.0.0.1, for tests that need a single server kind."""
    server = start_server("radicale", tmp_path / "radicale")
    try:
        yield server
    finally:
        server.stop()


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    import shutil

    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make test` (it installs it), or `apt-get install chromium`")
    return path


@contextlib.contextmanager
def running_web(rt, bolt_app=None):
    """calsync's real web server (waitress) on the port its links name, in a thread."""
    import threading

    from web.server import make_server

    server = make_server(rt, "127.0.0.1", rt.settings.http_port, bolt_app=bolt_app)
    stopping = threading.Event()

    def run():
        try:
            server.run()
        except OSError:
            if not stopping.is_set():  # sockets closed under select() while stopping are expected
                raise

    thread = threading.Thread(target=run, name="web", daemon=True)
    thread.start()

    def stop():
        # Idle keep-alive connections would keep waitress's loop running after the server closes.
        for channel in list(server._map.values()):
            if channel is not server.trigger:
                channel.close()

    try:
        yield server
    finally:
        stopping.set()
        try:
            # Closed from its own loop thread: closing it from here races the loop's select() (EBADF).
            server.trigger.pull_trigger(stop)
        except OSError:
            pass  # the loop has already ended and closed its trigger: nothing is left to stop
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()
