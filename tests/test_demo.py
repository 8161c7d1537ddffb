"""`make demo` is one of the README's two commands: the whole story runs, end to end, as a new user sees it."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_demo_tells_the_whole_story_and_delivers_what_waited():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "POST the new password → 200: Active" in done.stdout
    assert "'Booked during the outage' is there 1 time(s)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
