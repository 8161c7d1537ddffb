"""The container image (Dockerfile) built and run with Debian's podman, as an operator would.

No registry of images is reachable here, so the base image is a Debian bookworm root made with
mmdebstrap from the host's own apt sources and imported into podman once (kept in podman's
storage for the next run); the Dockerfile is built on it with ``--build-arg BASE=...`` instead of
``python:3.11-slim``, its dependencies from PyPI. The container runs on the host's network bound
to 127.0.0.1 only; it answers /healthz over HTTP, runs as a non-root user, passes its own
HEALTHCHECK, and stops cleanly on SIGTERM. Then the scale-out setup of compose.yaml: a web and
two scheduler containers on one PostgreSQL (the tests' own server on 127.0.0.1, in place of
compose's postgres image).

Nothing is skipped: without podman (``make system-deps`` installs it) the test fails and says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from conftest_ports import free_port
from cryptography.fernet import Fernet

BASE_IMAGE = "localhost/calsync-base:bookworm"
IMAGE = "localhost/calsync:test"
# Debian bookworm, the packages a python:3.11-slim image has that the Dockerfile uses.
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
# Podman's rootful defaults raise RLIMIT_NOFILE/NPROC past this sandbox's hard limits (no
# CAP_SYS_RESOURCE: "setrlimit RLIMIT_NOFILE: Operation not permitted"); these fit any machine.
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
CA_IN_BUILD = "/run/calsync-build-ca.crt"


def podman() -> list[str]:
    exe = shutil.which("podman")
    if exe is None:
        pytest.fail("podman is not installed: run `make system-deps` (it installs podman, runc and mmdebstrap with apt-get)")
    # crun refuses a hybrid cgroup v1/v2 host ("cgroups in hybrid mode not supported"); runc runs there.
    return [exe, "--runtime", "runc"] if shutil.which("runc") else [exe]


def run(argv: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv[:4])} … failed (exit {result.returncode}):\n{result.stderr[-4000:]}{result.stdout[-2000:]}")
    return result


def ensure_base_image() -> None:
    """A Debian bookworm root with Python, made once with mmdebstrap and imported into podman."""
    if run([*podman(), "image", "exists", BASE_IMAGE], check=False).returncode == 0:
        return
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        pytest.fail("mmdebstrap is not installed: run `make system-deps`")
    if os.geteuid() != 0:
        pytest.fail("building the base image needs root (mmdebstrap in root mode, rootful podman)")
    # The host's apt sources (bookworm, its updates and security), else mmdebstrap's default mirror.
    mirrors = [str(p) for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) if "debian" in p.read_text()]
    argv = [
        mmdebstrap,
        "--quiet",
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        "--aptopt=Acquire::Languages none",
        *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale")),
        "bookworm",
        "-",
        *mirrors,
    ]
    env = {**os.environ, "TMPDIR": "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL) as bootstrap:
        assert bootstrap.stdout is not None and bootstrap.stderr is not None
        imported = subprocess.run(
            [*podman(), "import", "--quiet", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
            stdin=bootstrap.stdout,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        bootstrap.stdout.close()
        err = bootstrap.stderr.read().decode(errors="replace")
        bootstrap.wait(timeout=60)
    if bootstrap.returncode != 0 or imported.returncode != 0:
        run([*podman(), "rmi", "--force", BASE_IMAGE], check=False)
        pytest.fail(
            f"the base image could not be made: mmdebstrap exit {bootstrap.returncode}: {err[-3000:]}\npodman import: {imported.stderr[-2000:]}"
        )


def image_id(name: str) -> str | None:
    result = run([*podman(), "image", "inspect", "--format", "{{.Id}}", name], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def build_image() -> None:
    ensure_base_image()
    before = image_id(IMAGE)
    argv = [*podman(), "build", "--quiet", "--format", "docker", "--network", "host", *ULIMITS, "--build-arg", f"BASE={BASE_IMAGE}"]
    # pip in the build trusts what the host's pip trusts (this network's CA bundle, when it has one).
    ca = next((c for c in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt") if c and Path(c).is_file()), None)
    if ca:
        argv += ["--volume", f"{ca}:{CA_IN_BUILD}:ro", "--build-arg", f"PIP_CERT={CA_IN_BUILD}"]
    run([*argv, "--tag", IMAGE, str(ROOT)], timeout=900)
    after = image_id(IMAGE)
    if before and before != after:  # the image of the previous code: no longer tagged, not kept
        run([*podman(), "rmi", before], check=False)


def env_file(directory: Path, **settings) -> Path:
    """The container's settings, secrets included, in a 0600 file (never in podman's argv)."""
    path = directory / f"calsync-{secrets.token_hex(4)}.env"
    path.touch(mode=0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return path


@contextlib.contextmanager
def container(*args: str, env: Path, command: tuple[str, ...] = ()):
    """A container of IMAGE on the host's network, removed by its own id afterwards."""
    result = run([*podman(), "run", "--detach", "--network", "host", *ULIMITS, "--env-file", str(env), *args, IMAGE, *command])
    cid = result.stdout.strip().splitlines()[-1]
    try:
        yield cid
    finally:
        run([*podman(), "rm", "--force", "--time", "10", cid], check=False)


def logs(cid: str) -> str:
    result = run([*podman(), "logs", cid], check=False)
    return (result.stdout + result.stderr)[-4000:]


# Straight to loopback, whatever proxy the environment names.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_healthz(port: int, cid: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with DIRECT.open(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                assert answer.status == 200
                return json.loads(answer.read())
        except (urllib.error.URLError, ConnectionError):
            state = run([*podman(), "inspect", "--format", "{{.State.Status}}", cid], check=False).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                pytest.fail(f"no /healthz from the container (state {state}):\n{logs(cid)}")
            time.sleep(0.25)


def service_settings(port: int, **extra) -> dict:
    return {
        "CALSYNC_HTTP_HOST": "127.0.0.1",  # the image listens on 0.0.0.0; here loopback only
        "CALSYNC_HTTP_PORT": port,
        "CALSYNC_BASE_URL": f"http://127.0.0.1:{port}",
        "CALSYNC_SECRET_KEY": Fernet.generate_key().decode(),
        "CALSYNC_FEED_SECRET": secrets.token_urlsafe(32),
        **extra,
    }


@pytest.mark.postgres
def test_image_builds_runs_as_non_root_answers_healthz_and_scales_out_on_postgres(tmp_path, postgres):
    build_image()
    (inspected,) = json.loads(run([*podman(), "image", "inspect", IMAGE]).stdout)
    assert inspected["Config"]["User"].split(":")[0] not in ("", "0", "root")
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])  # kept: a docker-format image
    assert "8080/tcp" in inspected["Config"]["ExposedPorts"]

    # Alone, with its defaults (SQLite in the data dir the unprivileged user owns).
    port = free_port()
    with container(env=env_file(tmp_path, **service_settings(port))) as cid:
        health = get_healthz(port, cid)
        assert health["status"] == "ok" and health["database"] == "ok", health
        assert run([*podman(), "exec", cid, "id", "-u"]).stdout.strip() not in ("", "0")
        pid = run([*podman(), "inspect", "--format", "{{.State.Pid}}", cid]).stdout.strip()
        uid_line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
        assert set(uid_line.split()[1:]) != {"0"}, uid_line  # seen from the host: not root either
        checked = run([*podman(), "healthcheck", "run", cid], check=False)
        assert checked.returncode == 0, f"HEALTHCHECK failed: {checked.stdout}{checked.stderr}\n{logs(cid)}"
        # SIGTERM: the service stops taking work and exits 0.
        run([*podman(), "stop", "--time", "30", cid], timeout=60)
        code = run([*podman(), "inspect", "--format", "{{.State.ExitCode}}", cid]).stdout.strip()
        assert code == "0", logs(cid)
        assert "calsync service stopped" in logs(cid)

    # compose.yaml's scale-out: one web process and two schedulers sharing one PostgreSQL.
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["scheduler"]["command"][-2:] == ["--role", "scheduler"]
    assert compose["services"]["web"]["command"][-2:] == ["--role", "web"]
    documented = (ROOT / "README.md").read_text() + (ROOT / "core" / "config.py").read_text()
    unknown = [name for name in compose["services"]["web"]["environment"] if name not in documented]
    assert not unknown, f"compose.yaml sets settings calsync does not read: {unknown}"
    port = free_port()
    database = postgres.create_database(f"container_{secrets.token_hex(4)}")
    env = env_file(tmp_path, **service_settings(port, CALSYNC_DATABASE_URL=database))
    with container(env=env, command=("calsync", "serve", "--role", "web")) as web:
        assert get_healthz(port, web)["database"] == "ok"
        # Two schedulers of two "machines" (their own hostnames, as compose gives its replicas).
        with (
            container("--hostname", "scheduler-1", env=env, command=("calsync", "serve", "--role", "scheduler")) as one,
            container("--hostname", "scheduler-2", env=env, command=("calsync", "serve", "--role", "scheduler")) as two,
        ):
            deadline = time.monotonic() + 60
            while (health := get_healthz(port, web))["scheduler"]["schedulers"] < 2:
                assert time.monotonic() < deadline, f"{health}\n{logs(one)}\n{logs(two)}"
                time.sleep(0.5)
            assert health["scheduler"]["state"] == "alive"
