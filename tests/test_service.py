"""The service entry point as an operator runs it: start, answer, stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests
import yaml
from conftest import ROOT, make_env
from conftest_ports import free_port


def test_run_bot_serves_healthz_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, **make_env(tmp_path, CALSYNC_HTTP_PORT=port)}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bot.py"), "--log-level", "INFO"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert answer.json()["status"] == "ok" and answer.headers["Referrer-Policy"] == "no-referrer"
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Slack is not configured" in err  # said once at start-up, the service runs without it
    assert err.count("Slack is not configured") == 1
    # An http:// base URL on loopback: Google and Microsoft could not reach the webhooks.
    assert err.count("push is off (CALSYNC_BASE_URL is not an https:// URL)") == 1


def test_bad_setting_stops_the_service_with_one_line(tmp_path):
    env = {**os.environ, **make_env(tmp_path, CALSYNC_HTTP_PORT="eighty")}
    result = subprocess.run([sys.executable, str(ROOT / "run_bot.py")], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("calsync: configuration error: CALSYNC_HTTP_PORT")


def test_slack_manifest_asks_for_what_the_bot_uses():
    manifest = yaml.safe_load((ROOT / "bot" / "manifest.yml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands", "im:write", "users:read", "users:read.email"} <= scopes
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/calsync" and command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
