"""Benchmark: calsync vs vdirsyncer on one local Radicale calendar, both as command-line processes.

Run from the project root::

    .venv/bin/python bench/compare_bench.py [--events N] [--rounds R] [--quick] [--strict]

One Radicale is started on 127.0.0.1 in a temporary directory, with one calendar
of N events (default 1,000, ``--quick`` 200) put straight into it by the server
admin. A small **counting reverse proxy** (threaded ``http.server`` on
127.0.0.1, forwarding with ``http.client``) stands in front of it; both tools
talk to the proxy only, so every HTTP request and every byte (request line,
headers and body, both directions, as they cross the wire) is counted per
phase, for both tools alike.

Per round (default 3, ``--quick`` 1), each from a fresh state:

* calsync: ``run_console.py staff add`` and ``connect caldav ... --calendar NAME
  --no-sync`` (not timed), then ``run_console.py sync ID --json`` twice, timed as
  whole processes: the first sync (reads the N busy events) and a no-change resync.
* vdirsyncer: a config pairing a ``caldav`` storage (the proxy URL of the
  calendar) with a ``filesystem`` storage in a temporary directory;
  ``vdirsyncer discover`` (not timed), then ``vdirsyncer sync`` twice, timed.

Plus the start-up cost of each CLI without any network: ``python -c pass``,
``run_console.py status --json`` and ``vdirsyncer showconfig`` (median of 5).

The table shows medians over the rounds; ``bench/results/latest.json`` (``--quick``:
``latest-quick.json``) gets the numbers (merged into what ``sweep_bench.py``
wrote there). Exit status 1 when the benchmark itself fails (a process
exits non-zero, a sanity check fails); with ``--strict`` also when a target is
missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import add_result_options, merge_results, render_table, results_path
from servers import start_server

HOST = "127.0.0.1"
CALENDAR = "bench"
CALENDAR_NAME = "Bench calendar"
STAFF = "bench@example.com"
SPREAD_DAYS = 30
PROCESS_TIMEOUT = 600.0  # one CLI process
UPSTREAM_TIMEOUT = 60.0  # one request forwarded by the proxy
STARTUP_RUNS = 5

# Targets (from the issue)
NOCHANGE_REQUESTS_TARGET = 1  # requests per calendar, no-change resync
NOCHANGE_BYTES_TARGET = 1500  # bytes on the wire, no-change resync (issue 15: at the header floor, keep it)
# Issue 8's "1 % of vdirsyncer's bytes" is below the HTTP header floor: retired by issue 15 (the
# ratio is still printed and kept in latest.json).
FIRST_TIME_RATIO_TARGET = 0.8  # ours / vdirsyncer's, whole processes (issue 15)
NOCHANGE_TIME_RATIO_TARGET = 0.5
FIRST_REQUESTS_RATIO_TARGET = 2.0

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
METHODS = (
    "GET",
    "HEAD",
    "PUT",
    "POST",
    "DELETE",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "REPORT",
    "MKCALENDAR",
    "MKCOL",
    "MOVE",
    "COPY",
    "LOCK",
    "UNLOCK",
)


class BenchFailure(Exception):
    """The benchmark cannot give a valid result; ``str()`` says why."""


# -- the counting proxy -----------------------------------------------------------------------


class PhaseStats:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes_sent = 0  # client -> server (request line, headers, body)
        self.bytes_received = 0  # server -> client (status line, headers, body as sent)
        self.bodies = 0  # response bodies as sent (part of bytes_received)
        self.body_uncompressed = 0  # response bodies after undoing Content-Encoding
        self.methods: Counter = Counter()
        self.statuses: Counter = Counter()

    @property
    def bytes_total(self) -> int:
        return self.bytes_sent + self.bytes_received

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_total": self.bytes_total,
            "response_bodies": self.bodies,
            "response_bodies_uncompressed": self.body_uncompressed,
            "bytes_total_uncompressed": self.bytes_total - self.bodies + self.body_uncompressed,
            "methods": dict(sorted(self.methods.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def _uncompressed_size(body: bytes, encoding: str) -> int:
    encoding = encoding.strip().lower()
    try:
        if encoding == "gzip":
            return len(gzip.decompress(body))
        if encoding == "deflate":
            try:
                return len(zlib.decompress(body))
            except zlib.error:
                return len(zlib.decompress(body, -zlib.MAX_WBITS))
    except (OSError, zlib.error, EOFError):
        pass
    return len(body)


class _ProxyServer(ThreadingHTTPServer):
    """The proxy's HTTP server: ``proxy`` is the CountingProxy its handlers count into."""

    proxy: CountingProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client, as the server would
    server_version = "bench-proxy"
    server: _ProxyServer
    raw_requestline: bytes  # set by BaseHTTPRequestHandler.handle_one_request (typeshed leaves it out)

    def log_message(self, fmt: str, *args: object) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()

    def _read_body(self) -> tuple[bytes, int]:
        """The request body, and how many bytes it took on the wire."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            wire = 0
            for _ in range(1_000_000):  # bounded
                line = self.rfile.readline(65537)
                wire += len(line)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(1000):
                        trailer = self.rfile.readline(65537)
                        wire += len(trailer)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunk = self.rfile.read(size)
                crlf = self.rfile.readline(3)
                data += chunk
                wire += len(chunk) + len(crlf)
            return bytes(data), wire
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        return body, len(body)

    def _forward(self) -> None:
        proxy = self.server.proxy
        body, body_wire = self._read_body()
        header_bytes = sum(len(k) + len(v) + 4 for k, v in self.headers.items()) + 2
        sent = len(self.raw_requestline) + header_bytes + body_wire

        try:
            status, reason, headers, data = self._upstream_request(proxy, body)
        except (OSError, http.client.HTTPException) as exc:  # the client sees it as a bad gateway
            status, reason = 502, "Bad Gateway"
            headers, data = [("Content-Type", "text/plain")], f"bench proxy: {exc!r}".encode()
        out = [f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")]
        encoding = ""
        has_length = False
        for name, value in headers:
            low = name.lower()
            if low in HOP_BY_HOP:
                continue
            if low == "content-length":
                if self.command == "HEAD":
                    has_length = True
                    out.append(f"{name}: {value}\r\n".encode("latin-1"))
                continue
            if low == "content-encoding":
                encoding = value
            out.append(f"{name}: {value}\r\n".encode("latin-1"))
        if self.command != "HEAD" and not (100 <= status < 200 or status in (204, 304)):
            out.append(f"Content-Length: {len(data)}\r\n".encode("latin-1"))
            has_length = True
        if self.close_connection or (not has_length and self.command != "HEAD" and status not in (204, 304)):
            out.append(b"Connection: close\r\n")
            self.close_connection = True
        out.append(b"\r\n")
        head = b"".join(out)
        self.wfile.write(head + data)
        self.wfile.flush()
        proxy.record(
            self.command, status, sent, len(head) + len(data), len(data), _uncompressed_size(data, encoding) if encoding else len(data)
        )

    def _upstream_request(self, proxy: CountingProxy, body: bytes):
        for attempt in range(2):  # one reconnect when a kept-alive upstream connection went away
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=UPSTREAM_TIMEOUT)
            conn = self.upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                        continue
                    conn.putheader(name, value)
                if body or "Content-Length" in self.headers or "chunked" in self.headers.get("Transfer-Encoding", ""):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    self.upstream = None
                return resp.status, resp.reason, resp.getheaders(), data
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
                http.client.ResponseNotReady,
            ):
                conn.close()
                self.upstream = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


for _method in METHODS:
    setattr(_ProxyHandler, f"do_{_method}", _ProxyHandler._forward)


class CountingProxy:
    """A reverse proxy on 127.0.0.1 in front of one upstream, counting requests and bytes per phase."""

    def __init__(self, upstream_url: str) -> None:
        parts = urllib.parse.urlsplit(upstream_url)
        if parts.hostname != HOST:
            raise ValueError(f"refusing non-local upstream {upstream_url!r}")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.server = _ProxyServer((HOST, 0), _ProxyHandler)
        self.server.daemon_threads = True
        self.server.proxy = self
        self.port = self.server.server_address[1]
        self._lock = threading.Lock()
        self._current: PhaseStats | None = None
        self.unphased = PhaseStats()
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="bench-proxy", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def url_for(self, upstream_url: str) -> str:
        """The same path, through the proxy."""
        path = urllib.parse.urlsplit(upstream_url).path
        return f"http://{HOST}:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def record(self, method: str, status: int, sent: int, received: int, body: int, uncompressed: int) -> None:
        with self._lock:
            stats = self._current or self.unphased
            stats.requests += 1
            stats.bytes_sent += sent
            stats.bytes_received += received
            stats.bodies += body
            stats.body_uncompressed += uncompressed
            stats.methods[method] += 1
            stats.statuses[status] += 1

    @contextlib.contextmanager
    def phase(self):
        """Count everything until the block ends into a fresh PhaseStats (yielded)."""
        stats = PhaseStats()
        with self._lock:
            if self._current is not None:
                raise RuntimeError("phases do not nest")
            self._current = stats
        try:
            yield stats
        finally:
            with self._lock:
                self._current = None


# -- processes ------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict:
    """The environment for a tool's process: no proxies, no CALSYNC_/SLACK_ settings of the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CALSYNC_", "SLACK_")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = HOST
    env.update(extra)
    return env


def run_process(cmd: list[str], *, env: dict, cwd: Path, what: str, stdin: str | None = None) -> tuple[float, str]:
    """Run ``cmd`` to the end; returns (wall seconds, stdout). Non-zero exit -> BenchFailure."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchFailure(f"{what}: did not finish within {PROCESS_TIMEOUT:.0f}s") from exc
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchFailure(f"{what}: exit status {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def vdirsyncer_command() -> list[str]:
    """How to run vdirsyncer with this interpreter; installs it with pip when it is missing."""
    script = Path(sys.executable).parent / "vdirsyncer"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "vdirsyncer"]
    probe = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        print("vdirsyncer is not installed here: pip install -q vdirsyncer ...", flush=True)
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "vdirsyncer"], capture_output=True, text=True, timeout=600, check=False
        )
        if install.returncode != 0:
            raise BenchFailure(f"pip install vdirsyncer failed:\n{install.stderr[-2000:]}")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "vdirsyncer"]
        probe = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120, check=False)
        if probe.returncode != 0:
            raise BenchFailure(f"vdirsyncer does not run: {probe.stderr[-2000:]}")
    return cmd


def vdirsyncer_version(cmd: list[str]) -> str:
    out = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120, check=False).stdout
    return out.strip().rsplit(" ", 1)[-1]


# -- setup ---------------------------------------------------------------------------------


def seed_calendar(server, events: int) -> str:
    """One calendar with ``events`` busy events, PUT straight to Radicale (not through the proxy)."""
    import requests
    from conftest import vevent

    url = server.make_calendar(CALENDAR, CALENDAR_NAME)
    base = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    step = dt.timedelta(days=SPREAD_DAYS) / events
    with requests.Session() as session:
        session.auth = server.admin_auth
        for j in range(events):
            start = (base + step * (j + 0.5)).replace(second=0, microsecond=0)
            uid = f"bench-busy-{j}"
            resp = session.put(
                f"{url}{uid}.ics",
                timeout=30,
                data=vevent(uid, start, start + dt.timedelta(minutes=30), f"Busy {j}").encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8"},
            )
            if resp.status_code not in (201, 204):
                raise BenchFailure(f"seeding: PUT {uid}.ics -> HTTP {resp.status_code}")
    found = len(server.list_hrefs(url))
    if found != events:
        raise BenchFailure(f"seeding: the calendar holds {found} events, expected {events}")
    return url


def write_vdirsyncer_config(work: Path, calendar_url: str, username: str, password: str) -> Path:
    (work / "status").mkdir(parents=True)
    (work / "local").mkdir(parents=True)
    config = work / "config"
    config.write_text(
        "[general]\n"
        f'status_path = "{work / "status"}/"\n\n'
        "[pair bench]\n"
        'a = "bench_remote"\n'
        'b = "bench_local"\n'
        "collections = null\n\n"
        "[storage bench_remote]\n"
        'type = "caldav"\n'
        f'url = "{calendar_url}"\n'
        f'username = "{username}"\n'
        f'password = "{password}"\n\n'
        "[storage bench_local]\n"
        'type = "filesystem"\n'
        f'path = "{work / "local"}/"\n'
        'fileext = ".ics"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config


# -- one round -----------------------------------------------------------------------------


def calsync_round(proxy: CountingProxy, server, events: int, work: Path) -> dict:
    work.mkdir(parents=True)
    env = clean_env(CALSYNC_DATA_DIR=str(work / "var"), CALSYNC_ALLOW_PRIVATE_URLS="1", CALSYNC_CONNECT_PASSWORD=server.password)
    cli = [sys.executable, str(ROOT / "run_console.py")]
    run_process(cli + ["staff", "add", STAFF, "--name", "Bench Staff", "--timezone", "UTC"], env=env, cwd=work, what="calsync staff add")
    with proxy.phase() as setup:
        _, out = run_process(
            cli
            + [
                "connect",
                "caldav",
                "--staff",
                STAFF,
                "--url",
                proxy.base_url,
                "--username",
                server.username,
                "--calendar",
                CALENDAR_NAME,
                "--no-sync",
                "--json",
            ],
            env=env,
            cwd=work,
            what="calsync connect",
        )
    conn = json.loads(out)
    calendars = conn.get("calendars", [])
    if len(calendars) != 1 or not calendars[0].get("destination"):
        raise BenchFailure(f"calsync connect: expected exactly one calendar (the destination), got {calendars}")
    conn_id = str(conn["id"])
    result = {"connect_requests": setup.requests}
    for phase, expect_read in (("first", events), ("nochange", 0)):
        with proxy.phase() as stats:
            wall, out = run_process(cli + ["sync", conn_id, "--json"], env=env, cwd=work, what=f"calsync sync ({phase})")
        report = json.loads(out)[0]
        if report["outcome"] != "ok":
            raise BenchFailure(f"calsync {phase} sync: outcome {report['outcome']!r}: {report.get('error')}")
        if report["entries_read"] != expect_read:
            raise BenchFailure(f"calsync {phase} sync read {report['entries_read']} events, expected {expect_read}")
        if report["created"] or report["updated"] or report["deleted"]:
            raise BenchFailure(f"calsync {phase} sync wrote to the calendar: {report}")
        if report["requests"] != stats.requests:
            raise BenchFailure(f"calsync {phase} sync: its report says {report['requests']} requests, the proxy counted {stats.requests}")
        result[phase] = {"wall": wall, "inner_ms": report["duration_ms"], **stats.to_dict()}
    return result


def vdirsyncer_round(proxy: CountingProxy, server, calendar_url: str, events: int, work: Path, cmd: list[str]) -> dict:
    config = write_vdirsyncer_config(work, proxy.url_for(calendar_url), server.username, server.password)
    env = clean_env(HOME=str(work), XDG_CONFIG_HOME=str(work / ".config"))
    with proxy.phase() as setup:
        run_process(cmd + ["-c", str(config), "discover"], env=env, cwd=work, what="vdirsyncer discover", stdin="y\n" * 5)
    result = {"discover_requests": setup.requests}
    for phase in ("first", "nochange"):
        with proxy.phase() as stats:
            wall, _ = run_process(cmd + ["-c", str(config), "sync"], env=env, cwd=work, what=f"vdirsyncer sync ({phase})")
        files = sum(1 for p in (work / "local").rglob("*.ics"))
        if files != events:
            raise BenchFailure(f"vdirsyncer {phase} sync: the local storage holds {files} events, expected {events}")
        result[phase] = {"wall": wall, **stats.to_dict()}
    return result


def startup_costs(cmd_vdir: list[str], work: Path, vdir_config: Path) -> dict:
    """Median wall time of each CLI doing no network at all."""
    work.mkdir(parents=True)
    env_cal = clean_env(CALSYNC_DATA_DIR=str(work / "var"), CALSYNC_ALLOW_PRIVATE_URLS="1")
    cli = [sys.executable, str(ROOT / "run_console.py")]
    run_process(cli + ["status", "--json"], env=env_cal, cwd=work, what="calsync status (warm-up)")
    runs = {
        "python -c pass": ([sys.executable, "-c", "pass"], clean_env()),
        "calsync: run_console.py status --json": (cli + ["status", "--json"], env_cal),
        "vdirsyncer: showconfig": (
            cmd_vdir + ["-c", str(vdir_config), "showconfig"],
            clean_env(HOME=str(work), XDG_CONFIG_HOME=str(work / ".config")),
        ),
    }
    out = {}
    for name, (cmd, env) in runs.items():
        walls = [run_process(cmd, env=env, cwd=work, what=name)[0] for _ in range(STARTUP_RUNS)]
        out[name] = statistics.median(walls)
    return out


def proxy_overhead(server, proxy: CountingProxy, calendar_url: str, runs: int = 15) -> dict:
    """Median extra milliseconds the proxy adds to one request: a small one and a 1,000-entry listing."""
    import requests

    small = (
        b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
        "0",
        server.principal_url,
    )
    listing = (
        b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><resourcetype/><getcontenttype/><getetag/></prop></propfind>',
        "1",
        calendar_url,
    )
    out = {}
    with requests.Session() as session:
        session.auth = server.user_auth
        session.trust_env = False
        for name, (body, depth, url) in (("small_propfind", small), ("etag_listing", listing)):
            walls: dict[str, list[float]] = {"direct": [], "proxy": []}
            for i in range(runs):
                for how in ("direct", "proxy") if i % 2 == 0 else ("proxy", "direct"):
                    target = url if how == "direct" else proxy.url_for(url)
                    started = time.perf_counter()
                    resp = session.request(
                        "PROPFIND", target, data=body, timeout=60, headers={"Depth": depth, "Content-Type": "application/xml"}
                    )
                    walls[how].append(time.perf_counter() - started)
                    if resp.status_code != 207:
                        raise BenchFailure(f"proxy overhead check: PROPFIND {target} -> HTTP {resp.status_code}")
            direct, proxied = statistics.median(walls["direct"]), statistics.median(walls["proxy"])
            out[name] = {"direct_ms": direct * 1000, "proxy_ms": proxied * 1000, "overhead_ms": (proxied - direct) * 1000}
    return out


# -- report --------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(rounds: list[dict]) -> dict:
    """Medians over the rounds, per tool and phase."""
    out: dict = {}
    for tool in ("calsync", "vdirsyncer"):
        out[tool] = {}
        for phase in ("first", "nochange"):
            rows = [r[tool][phase] for r in rounds]
            walls = [row["wall"] for row in rows]
            out[tool][phase] = {
                "wall": _median(walls),
                "wall_min": min(walls),
                "wall_max": max(walls),
                "requests": _median([row["requests"] for row in rows]),
                "bytes_sent": _median([row["bytes_sent"] for row in rows]),
                "bytes_received": _median([row["bytes_received"] for row in rows]),
                "bytes_total": _median([row["bytes_total"] for row in rows]),
                "response_bodies_uncompressed": _median([row["response_bodies_uncompressed"] for row in rows]),
                "bytes_total_uncompressed": _median([row["bytes_total_uncompressed"] for row in rows]),
                "methods": rows[-1]["methods"],
            }
    return out


def _fmt_methods(methods: dict) -> str:
    return " ".join(f"{k}x{v}" for k, v in methods.items())


def report(summary: dict, startup: dict, overhead: dict, rounds: int) -> tuple[str, dict]:
    header = (
        "phase",
        "tool",
        "wall time (s)",
        "requests",
        "bytes sent",
        "bytes received",
        "bytes total",
        "total if uncompressed",
        "requests by method",
    )
    body = []
    for phase, label in (("first", "first sync"), ("nochange", "no-change resync")):
        for tool in ("calsync", "vdirsyncer"):
            s = summary[tool][phase]
            wall = f"{s['wall']:.2f}" if rounds == 1 else f"{s['wall']:.2f} ({s['wall_min']:.2f}-{s['wall_max']:.2f})"
            body.append(
                (
                    label,
                    tool,
                    wall,
                    f"{s['requests']:.0f}",
                    f"{s['bytes_sent']:,.0f}",
                    f"{s['bytes_received']:,.0f}",
                    f"{s['bytes_total']:,.0f}",
                    f"{s['bytes_total_uncompressed']:,.0f}",
                    _fmt_methods(s["methods"]),
                )
            )
    ours, theirs = summary["calsync"], summary["vdirsyncer"]
    keys = {
        "first_sync_time_ratio_vs_vdirsyncer": ours["first"]["wall"] / theirs["first"]["wall"],
        "nochange_time_ratio_vs_vdirsyncer": ours["nochange"]["wall"] / theirs["nochange"]["wall"],
        "nochange_requests_per_calendar": ours["nochange"]["requests"],  # one calendar
        "nochange_bytes": ours["nochange"]["bytes_total"],
        "nochange_bytes_ratio_vs_vdirsyncer": ours["nochange"]["bytes_total"] / theirs["nochange"]["bytes_total"],
        "nochange_bytes_uncompressed_ratio_vs_vdirsyncer": ours["nochange"]["bytes_total_uncompressed"]
        / theirs["nochange"]["bytes_total_uncompressed"],
        "first_sync_requests_ratio_vs_vdirsyncer": ours["first"]["requests"] / theirs["first"]["requests"],
        "first_sync_bytes_ratio_vs_vdirsyncer": ours["first"]["bytes_total"] / theirs["first"]["bytes_total"],
    }
    ours_start = startup["calsync: run_console.py status --json"]
    theirs_start = startup["vdirsyncer: showconfig"]
    for phase, key in (("first", "first_sync"), ("nochange", "nochange")):
        keys[f"{key}_time_ratio_vs_vdirsyncer_without_startup"] = (ours[phase]["wall"] - ours_start) / max(
            theirs[phase]["wall"] - theirs_start, 1e-3
        )
    lines = [render_table(header, body), ""]
    lines.append(
        render_table(
            (f"process start-up, no network (median of {STARTUP_RUNS})", "wall time (s)"), [(k, f"{v:.2f}") for k, v in startup.items()]
        )
    )
    lines.append("")
    lines.append(
        "proxy overhead per request (median of 15, direct vs through the proxy): "
        + "; ".join(f"{k.replace('_', ' ')} {v['direct_ms']:.1f} -> {v['proxy_ms']:.1f} ms" for k, v in overhead.items())
    )
    lines.append("")
    targets = [
        (
            "no-change requests per calendar",
            keys["nochange_requests_per_calendar"],
            f"<= {NOCHANGE_REQUESTS_TARGET}",
            keys["nochange_requests_per_calendar"] <= NOCHANGE_REQUESTS_TARGET,
        ),
        (
            "no-change bytes on the wire",
            keys["nochange_bytes"],
            f"<= {NOCHANGE_BYTES_TARGET}",
            keys["nochange_bytes"] <= NOCHANGE_BYTES_TARGET,
        ),
        (
            "first sync requests, calsync / vdirsyncer",
            keys["first_sync_requests_ratio_vs_vdirsyncer"],
            f"<= {FIRST_REQUESTS_RATIO_TARGET:g}",
            keys["first_sync_requests_ratio_vs_vdirsyncer"] <= FIRST_REQUESTS_RATIO_TARGET,
        ),
        (
            "first sync time, calsync / vdirsyncer",
            keys["first_sync_time_ratio_vs_vdirsyncer"],
            f"<= {FIRST_TIME_RATIO_TARGET:g}",
            keys["first_sync_time_ratio_vs_vdirsyncer"] <= FIRST_TIME_RATIO_TARGET,
        ),
        (
            "no-change time, calsync / vdirsyncer",
            keys["nochange_time_ratio_vs_vdirsyncer"],
            f"<= {NOCHANGE_TIME_RATIO_TARGET:g}",
            keys["nochange_time_ratio_vs_vdirsyncer"] <= NOCHANGE_TIME_RATIO_TARGET,
        ),
    ]
    lines.append(
        render_table(("target", "measured", "target", "verdict"), [(n, f"{v:.4g}", t, "OK" if ok else "MISSED") for n, v, t, ok in targets])
    )
    lines.append(
        f"(bytes, no-change, calsync / vdirsyncer: {keys['nochange_bytes_ratio_vs_vdirsyncer']:.4g}, "
        f"uncompressed: "
        f"{keys['nochange_bytes_uncompressed_ratio_vs_vdirsyncer']:.4g}; time ratios without each CLI's "
        f"start-up: first sync {keys['first_sync_time_ratio_vs_vdirsyncer_without_startup']:.3g}, "
        f"no-change {keys['nochange_time_ratio_vs_vdirsyncer_without_startup']:.3g})"
    )
    keys["targets_missed"] = [n for n, _, _, ok in targets if not ok]
    return "\n".join(lines), keys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events in the calendar (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds from a fresh state; medians are shown (default 3)")
    add_result_options(parser, "smoke run: --events 200 --rounds 1")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.rounds = 200, 1
    if not 1 <= args.events <= 20000:
        parser.error("--events must be between 1 and 20000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    args.output = results_path(args)
    return args


def bench(args) -> int:
    load_before = list(os.getloadavg())
    vdir = vdirsyncer_command()
    versions = {"vdirsyncer": vdirsyncer_version(vdir), "python": platform.python_version()}
    try:
        import radicale

        versions["radicale"] = getattr(radicale, "VERSION", "?")
    except ImportError:
        pass
    print(
        f"calsync vs vdirsyncer {versions['vdirsyncer']}: one calendar of {args.events} events on one Radicale "
        f"on 127.0.0.1, behind a counting proxy; {args.rounds} round(s)"
    )
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, load average {load_before[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="calsync-compare-") as tmp:
        tmp_path = Path(tmp)
        server = proxy = None
        try:
            server = start_server("radicale", tmp_path / "radicale")
            started = time.perf_counter()
            calendar_url = seed_calendar(server, args.events)
            print(f"setup: {args.events} events PUT into {calendar_url} in {time.perf_counter() - started:.1f}s (not measured)", flush=True)
            proxy = CountingProxy(server.base_url)
            proxy.start()
            rounds = []
            for i in range(args.rounds):
                # Alternate who goes first, so neither always finds Radicale's caches cold.
                order = ("calsync", "vdirsyncer") if i % 2 == 0 else ("vdirsyncer", "calsync")
                result = {}
                for tool in order:
                    work = tmp_path / f"round-{i}" / tool
                    if tool == "calsync":
                        result[tool] = calsync_round(proxy, server, args.events, work)
                    else:
                        work.mkdir(parents=True)
                        result[tool] = vdirsyncer_round(proxy, server, calendar_url, args.events, work, vdir)
                c, v = result["calsync"], result["vdirsyncer"]
                print(
                    f"round {i + 1}: calsync first {c['first']['wall']:.2f}s / no-change {c['nochange']['wall']:.2f}s; "
                    f"vdirsyncer first {v['first']['wall']:.2f}s / no-change {v['nochange']['wall']:.2f}s",
                    flush=True,
                )
                rounds.append(result)
            overhead = proxy_overhead(server, proxy, calendar_url)
            startup = startup_costs(vdir, tmp_path / "startup", tmp_path / "round-0" / "vdirsyncer" / "config")
        finally:
            if proxy is not None:
                proxy.shutdown()
            if server is not None:
                server.stop()

    summary = summarize(rounds)
    text, keys = report(summary, startup, overhead, args.rounds)
    print()
    print(text)
    details = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), **versions},
        "events": args.events,
        "rounds": args.rounds,
        "quick": args.quick,
        "summary": summary,
        "startup_seconds": startup,
        "proxy_overhead": overhead,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "per_round": rounds,
        "targets_missed": keys["targets_missed"],
    }
    merge_results(args.output, "compare", {k: v for k, v in keys.items() if k != "targets_missed"}, details)
    print(f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    if args.strict and keys["targets_missed"]:
        return 1
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return bench(args)
    except BenchFailure as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
