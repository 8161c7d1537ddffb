"""The expansion workers (core.expander) live only while there is work: after IDLE_STOP seconds
without a task, the worker processes and pebble's polling threads are gone; the next task starts
new ones; a task that runs longer than IDLE_STOP is never cut short."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import wait_for

from core import expander, ics

IDLE = 0.3
RRULE_EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:daily-1\r\n"
    "DTSTART:20270105T090000Z\r\nDTEND:20270105T093000Z\r\nRRULE:FREQ=DAILY;COUNT=4\r\nSUMMARY:Stand-up\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture
def quick_idle(monkeypatch):
    expander.shutdown()
    monkeypatch.setattr(expander, "IDLE_STOP", IDLE)
    yield
    expander.shutdown()


def _running(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for its parent (the forkserver) to reap it."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def _pebble_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "manager_loop" in t.name or "task_scheduler_loop" in t.name]


def _expand_in_a_worker() -> list:
    parsed = ics.parse(RRULE_EVENT, only=ics.READ)
    start, end = dt.datetime(2027, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    return expander.expand(RRULE_EVENT, parsed, start, end, ics.zone("UTC"), all_day_policy="ignore", max_occurrences=100, timeout=30)


def test_idle_workers_stop_and_the_next_expansion_starts_new_ones(quick_idle):
    assert len(_expand_in_a_worker()) == 4
    first = expander._schedule(os.getpid, ()).result(timeout=30)
    assert first != os.getpid() and _running(first)
    assert _pebble_threads(), "a pool is running"

    wait_for(lambda: not _running(first) and not _pebble_threads(), IDLE + 10, "idle workers and threads stopping")
    assert expander._pool is None

    assert len(_expand_in_a_worker()) == 4, "the next recurring event is expanded by new workers"
    second = expander._schedule(os.getpid, ()).result(timeout=30)
    assert second != first and _running(second)


def test_a_task_longer_than_the_idle_time_is_not_cut_short(quick_idle):
    expander._schedule(os.getpid, ()).result(timeout=30)  # done: the idle clock starts
    time.sleep(IDLE / 2)
    long_task = expander._schedule(time.sleep, (IDLE * 4,))
    worker = expander._schedule(os.getpid, ()).result(timeout=30)
    assert long_task.result(timeout=30) is None, "it ran to its end"
    assert _running(worker), "the pool outlived the idle time while a task ran"
    wait_for(lambda: not _running(worker), IDLE + 10, "the pool stopping once idle after it")


def test_shutdown_stops_the_workers_at_once(quick_idle):
    worker = expander._schedule(os.getpid, ()).result(timeout=30)
    expander.shutdown()
    wait_for(lambda: not _running(worker), 5, "the worker stopping")
    assert not _pebble_threads()


def _plain_events(n: int) -> list[str]:
    out = []
    for j in range(n):
        out.append(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:plain-{j}\r\nDTSTART:20270110T{8 + j % 10:02d}0000Z\r\nDTEND:20270110T{8 + j % 10:02d}3000Z\r\n"
            f"SUMMARY:Busy {j}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    out.append(RRULE_EVENT)  # a series: read by the sync itself, never ahead
    return out


def _read_ahead(datas: list[str]) -> list:
    start, end = dt.datetime(2027, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    return expander.read_ahead(datas, start, end, ics.zone("UTC"), all_day_policy="ignore", max_occurrences=100, timeout=30)


def test_a_read_does_not_wait_for_workers_that_have_not_started(quick_idle, monkeypatch):
    """Until a worker takes a chunk, the sync's thread parses the chunks not taken: a pool that
    never starts costs the read nothing, and the result is the one the workers give."""
    datas = _plain_events(expander.READ_AHEAD_MIN + 50)
    by_workers = _read_ahead(datas)
    assert sum(1 for r in by_workers if r is not None) == len(datas) - 1 and by_workers[-1] is None

    import concurrent.futures

    late = 8.0  # a pool that would take its first task only then (and fail it)
    never_started: list[concurrent.futures.Future] = []

    def give_up(future: concurrent.futures.Future) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_exception(RuntimeError("the workers never started"))

    def stuck(fn, args, timeout=None):
        future: concurrent.futures.Future = concurrent.futures.Future()
        timer = threading.Timer(late, give_up, (future,))
        timer.daemon = True
        timer.start()
        never_started.append(future)
        return future

    monkeypatch.setattr(expander, "_schedule", stuck)
    started = time.monotonic()
    in_thread = _read_ahead(datas)
    assert time.monotonic() - started < late / 2, "nothing waited on the workers"
    assert in_thread == by_workers
    assert never_started and all(f.cancelled() for f in never_started)


EXIT_EARLY = """
import logging, sys, time
logging.basicConfig(level=logging.INFO)
from core import expander
expander.warm_up()
time.sleep(float(sys.argv[1]))
print("done")
"""


def _processes_marked(mark: str) -> list[int]:
    """The live processes whose environment holds ``mark`` (a process and all it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if mark.encode() in (entry / "environ").read_bytes() and _running(int(entry.name)):
                    found.append(int(entry.name))
    return found


@pytest.mark.parametrize("after", [0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4])
def test_a_process_that_exits_while_the_workers_start_says_nothing_more(after):
    """A CLI command can end while the workers it warmed up are still starting (a failed sync
    reads nothing): its last line stays its own, and no worker outlives it. Exiting at several
    moments of the start covers the thread, the pool and the forkserver each being cut short."""
    root = Path(__file__).resolve().parent.parent
    for _ in range(3):
        mark = f"calsync-exit-test-{uuid.uuid4()}"
        run = subprocess.run(
            [sys.executable, "-c", EXIT_EARLY, str(after)],
            cwd=root,
            env={**os.environ, "CALSYNC_TEST_MARK": mark},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0 and run.stdout == "done\n", run
        assert run.stderr == "", "nothing is logged after the command's own output"
        wait_for(lambda mark=mark: not _processes_marked(mark), 10, "the forkserver and workers of the exited process stopping")
