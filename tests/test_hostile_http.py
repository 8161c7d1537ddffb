"""Hostile servers on loopback: every provider request ends by its deadline, holds no more than its
cap in memory, and never carries credentials to another host or to an address it did not check.

The servers are real sockets on 127.0.0.1 (and 127.0.0.2 as "another host"); calsync's real HTTP
client and providers talk to them. Bounds are generous: the point is that each case *ends*, with
the expected error, not how fast.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time

import pytest
from conftest import make_env, started

import models as m
from core import actions
from core import http as core_http
from core.http import AnswerTooLarge, CredentialsRedirect, DeadlineExceeded, HttpClient, URLNotAllowed
from core.providers.base import BadData, Transient
from core.providers.caldav import CalDAVProvider

FEED = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20260101T000000Z\r\n"
    b"DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class RawServer:
    """A TCP server on ``host`` whose every connection is handled by ``behave(conn, request_bytes)``.

    It records the request heads it received. Stopped by ``stop()`` (its own socket and threads).
    """

    def __init__(self, behave, host: str = "127.0.0.1"):
        self.behave = behave
        self.heads: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn):
        conn.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                piece = conn.recv(4096)
                if not piece:
                    return
                head += piece
            self.heads.append(head)
            self.behave(self, conn, head)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.accepter.join(5)
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def serve():
    servers = []

    def start(behave, host="127.0.0.1"):
        server = RawServer(behave, host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def trickle_body(server, conn, head):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: 100000\r\n\r\n")
    while not server.stopping.is_set():
        conn.sendall(b"X")
        time.sleep(0.3)


def trickle_headers(server, conn, head):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not server.stopping.is_set():
        conn.sendall(b"X-Slow: a\r\n")
        time.sleep(0.3)


def client(**kwargs) -> HttpClient:
    return HttpClient(**{"timeout": 5, "retries": 0, "allow_private": True, "deadline": 2, **kwargs})


@pytest.mark.parametrize("behave", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(serve, behave):
    server = serve(behave)
    started_at = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="did not finish within 2 s"):
        client().request("GET", server.url + "/feed.ics")
    assert time.monotonic() - started_at < 10, "the per-read timeout alone would never end it"


def test_a_sync_against_a_trickling_feed_ends_transient_and_leaves_nothing_running(tmp_path, serve):
    server = serve(trickle_body)
    with started(make_env(tmp_path, CALSYNC_HTTP_DEADLINE=2)) as rt:
        actions.add_staff(rt, "ada@example.com", "Ada")
        conn = m.Connection.create(
            staff=m.Staff.get(),
            provider="ics",
            account="feed",
            account_key="k",
            server_url=server.url,
            credentials=rt.vault.encrypt({"url": server.url + "/x.ics"}),
        )
        m.Calendar.create(connection=conn, remote_id=server.url, name="Feed", is_destination=False, writable=False)
        (report,) = actions.sync_now(rt, conn.id)
        assert report["outcome"] == "transient" and "did not finish within 2 s" in report["error"]
        assert m.SyncRun.select().where(m.SyncRun.outcome == "running").count() == 0
        row = m.Connection.get_by_id(conn.id)
        assert row.lease_owner is None and row.failing_since is not None


def test_a_sync_past_its_budget_ends_transient(tmp_path, serve):
    server = serve(trickle_body)
    with started(make_env(tmp_path, CALSYNC_HTTP_DEADLINE=600, CALSYNC_SYNC_BUDGET=10)) as rt:
        actions.add_staff(rt, "ada@example.com", "Ada")
        conn = m.Connection.create(
            staff=m.Staff.get(),
            provider="ics",
            account="feed",
            account_key="k",
            server_url=server.url,
            credentials=rt.vault.encrypt({"url": server.url + "/x.ics"}),
        )
        m.Calendar.create(connection=conn, remote_id=server.url, name="Feed", is_destination=False, writable=False)
        started_at = time.monotonic()
        (report,) = actions.sync_now(rt, conn.id)
        assert report["outcome"] == "transient" and "10 s budget" in report["error"]
        assert time.monotonic() - started_at < 30


def gzip_bomb(server, conn, head):
    body = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in about 64 KB
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def test_a_gzip_bomb_is_counted_after_decompression(serve):
    server = serve(gzip_bomb)
    with pytest.raises(AnswerTooLarge, match="1,048,576-byte limit"):
        client(max_bytes=1024 * 1024, deadline=30).request("GET", server.url + "/")


def huge_propfind(server, conn, head):
    conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"<d:response><d:href>/x</d:href></d:response>" * 1000
    try:
        for _ in range(20000):  # up to ~900 MB if nobody stops reading
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    except OSError:
        pass


def test_a_huge_caldav_answer_is_refused_with_a_clear_reason(serve):
    server = serve(huge_propfind)
    provider = CalDAVProvider(
        {"server_url": server.url + "/", "account": "ada"}, {"password": "pw"}, client(max_bytes=2 * 1024 * 1024, deadline=30)
    )
    with pytest.raises(BadData, match="too large to read"):
        provider.discover()


def big_401(server, conn, head):
    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (256 * 1024 * 1024))
    try:
        for _ in range(4096):
            conn.sendall(b"x" * 65536)
    except OSError:
        pass


def test_an_error_with_a_huge_body_is_read_only_in_part(serve):
    server = serve(big_401)
    response = client(deadline=30).request("GET", server.url + "/")
    assert response.status_code == 401 and len(response.content) <= core_http.ERROR_BODY_BYTES


def redirect_to(target: str):
    def behave(server, conn, head):
        conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % target.encode())

    return behave


def record(server, conn, head):
    conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n")


def test_credentials_never_follow_a_redirect_to_another_host(serve):
    other = serve(record, host="127.0.0.2")
    server = serve(redirect_to(other.url + "/dav/"))
    provider = CalDAVProvider({"server_url": server.url + "/", "account": "ada"}, {"password": "s3cret"}, client())
    with pytest.raises(BadData, match=r"redirected to another host \(127\.0\.0\.2:\d+\)"):
        provider.discover()
    assert other.heads == [], "nothing at all was sent to the other host"
    with pytest.raises(CredentialsRedirect):
        client().request("GET", server.url + "/", headers={"Authorization": "Bearer t0ken"})
    assert other.heads == []
    # Without credentials (a public feed), following is fine: the other host gets no secret.
    client().request("GET", server.url + "/")
    assert len(other.heads) == 1 and b"authorization" not in other.heads[0].lower()


def keep_alive(server, conn, head):
    """Answers every request on the connection until the client closes it (HTTP/1.1 keep-alive)."""
    while True:
        conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            piece = conn.recv(4096)
            if not piece:
                return
            head += piece
        server.heads.append(head)


def test_syncs_of_one_host_share_a_kept_alive_connection_and_a_dropped_one_costs_nothing(serve):
    server = serve(keep_alive)
    for _ in range(4):  # four syncs, each with its own client: one TCP connection
        assert client().request("PROPFIND", server.url + "/dav/").status_code == 207
    assert len(server.heads) == 4 and len(server.threads) == 1
    core_http.close_idle()  # the server's thread ends now, not at its read timeout
    # A server that closes each connection after answering, without saying so: the next
    # request finds the kept connection closed and goes out again on a new one, even with
    # retries off; every request is answered and each reached the server once.
    rude = serve(record)
    for _ in range(4):
        assert client().request("PROPFIND", rude.url + "/dav/").status_code == 207
    assert len(rude.heads) == 4


def test_the_address_checked_is_the_address_connected_to(serve, monkeypatch):
    """DNS rebinding: the name resolves to a public address when checked, to loopback a moment later."""
    server = serve(record)
    answers = iter(
        [[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", server.port))]]
        + [[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]] * 5
    )
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: next(answers))
    url = f"http://calendar.example.test:{server.port}/feed.ics"
    core_http.check_url(url, allow_private=False)  # what the user typed passes
    with pytest.raises(URLNotAllowed, match="private or loopback"):
        HttpClient(retries=0, allow_private=False, deadline=5).request("GET", url)
    assert server.heads == [], "the loopback service was never contacted"


def test_a_url_with_a_password_in_it_is_refused_and_not_repeated(rt):
    actions.add_staff(rt, "ada@example.com", "Ada")
    with pytest.raises(actions.InvalidInput) as refused:
        actions.connect(rt, "ada@example.com", "caldav", url="http://bob:hunter2@127.0.0.1:1/", username="bob", password="pw")
    assert "user name or password" in str(refused.value) and "hunter2" not in str(refused.value)
    assert m.Connection.select().count() == 0


def test_transient_failures_of_a_provider_are_transient():
    provider = CalDAVProvider({"server_url": "http://127.0.0.1:1/", "account": "ada"}, {"password": "pw"}, client())
    with pytest.raises(Transient, match="could not connect"):
        provider.discover()


def good_feed(server, conn, head):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: %d\r\n\r\n" % len(FEED) + FEED)


def test_one_hostile_calendar_cannot_stall_the_scheduler(tmp_path, serve):
    """Under the real service: a feed that never finishes holds one worker; the other connection
    syncs, the heartbeat goes on, and SIGTERM still ends the process within 30 seconds."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    slow, fine = serve(trickle_body), serve(good_feed)
    env = {
        **os.environ,
        **make_env(tmp_path, CALSYNC_WORKERS=2, CALSYNC_HTTP_DEADLINE=3600, CALSYNC_SYNC_BUDGET=3600, CALSYNC_HTTP_TIMEOUT=30),
    }
    with started(make_env(tmp_path)) as rt:
        actions.add_staff(rt, "ada@example.com", "Ada")
        for server in (slow, fine):
            conn = m.Connection.create(
                staff=m.Staff.get(),
                provider="ics",
                account=server.url,
                account_key=server.url,
                server_url=server.url,
                credentials=rt.vault.encrypt({"url": server.url + "/x.ics"}),
            )
            m.Calendar.create(connection=conn, remote_id=server.url, name="Feed", is_destination=False, writable=False)
    service = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bot.py"), "--role", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with started(make_env(tmp_path)) as rt:
            deadline = time.monotonic() + 60
            beats = set()
            while time.monotonic() < deadline:
                fine_row = m.Connection.get_by_id(2)
                beats |= {b.beat_at for b in m.SchedulerBeat.select()}
                if fine_row.status == "active" and len(beats) >= 2:
                    break
                time.sleep(0.5)
            assert m.Connection.get_by_id(2).status == "active", "the healthy connection synced meanwhile"
            assert len(beats) >= 2, "the heartbeat went on"
            assert m.Connection.get_by_id(1).lease_owner, "the hostile one still holds its worker"
    finally:
        stopping = time.monotonic()
        service.send_signal(signal.SIGTERM)
        _out, err = service.communicate(timeout=45)
    assert time.monotonic() - stopping < 30, "SIGTERM is obeyed within 30 s even with a stuck worker"
    assert service.returncode == 0, err
    assert "abandoned" in err


@pytest.mark.parametrize("behave", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_an_oauth_token_refresh_against_a_trickling_endpoint_ends_transient(tmp_path, serve, behave):
    """The token endpoint is another library's requests session (authlib): it runs on calsync's
    sockets, so its whole call ends by the deadline, and the failure is transient (not a revoked grant)."""
    from core import oauth
    from core.config import load_settings
    from core.providers.base import AuthRejected

    server = serve(behave)
    settings = load_settings(
        make_env(
            tmp_path,
            CALSYNC_HTTP_DEADLINE=2,
            CALSYNC_GOOGLE_CLIENT_ID="id",
            CALSYNC_GOOGLE_CLIENT_SECRET="s",
            CALSYNC_GOOGLE_TOKEN_URL=server.url + "/token",
        ),
        read_dotenv=False,
    )
    started_at = time.monotonic()
    with pytest.raises(Transient) as caught:
        oauth.refresh(settings, "google", {"refresh_token": "r", "access_token": "a"}, timeout=5)
    assert not isinstance(caught.value, AuthRejected)
    assert time.monotonic() - started_at < 10
    assert "sign-in service" in str(caught.value)


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1 (cert path, key path)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("stall", ["handshake", "body"])
def test_over_tls_a_stalled_handshake_or_a_trickle_ends_at_the_deadline(serve, tls_files, stall):
    """Providers are https: the TLS socket keeps the same deadline, the handshake included."""
    import ssl

    cert_path, key_path = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    def behave(server, conn, head):
        pass  # never used: the TLS server below reads the request itself

    server = serve(behave)
    server.stopping.set()  # take over the listening socket: accept and wrap it here
    server.accepter.join(5)

    def tls_accept():
        try:
            raw, _ = server.sock.accept()
        except OSError:
            return
        if stall == "handshake":
            time.sleep(8)  # TCP accepted, the TLS handshake never answered
            raw.close()
            return
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(30):
                    tls.sendall(b"X")
                    time.sleep(0.3)
        except OSError:
            pass  # calsync hung up at its deadline

    server.sock.settimeout(10)
    thread = threading.Thread(target=tls_accept, daemon=True)
    thread.start()
    started_at = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="did not finish within 2 s"):
        client(ca_file=str(cert_path)).request("GET", f"https://127.0.0.1:{server.port}/")
    assert time.monotonic() - started_at < 6
    thread.join(15)
