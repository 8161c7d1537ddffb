"""Settings from the environment and credentials encrypted at rest."""

from __future__ import annotations

import stat

import pytest
from conftest import make_env

import models as m
from core import actions, runtime
from core.config import ConfigError, load_settings
from core.crypto import CredentialsUnreadable, Vault, generate_key


def settings(tmp_path, **extra):
    return load_settings(make_env(tmp_path, **extra), read_dotenv=False)


def test_defaults_follow_the_spec(tmp_path):
    s = load_settings({"CALSYNC_DATA_DIR": str(tmp_path)}, read_dotenv=False)
    assert s.sync_interval == 900 and s.workers == 8 and s.allow_private_urls is False
    assert s.http_per_host == 4
    assert s.database_url == f"sqlite:///{tmp_path}/calsync.db"


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("CALSYNC_SYNC_INTERVAL", "often", "whole number"),
        ("CALSYNC_SYNC_INTERVAL", "5", "between"),
        ("CALSYNC_WORKERS", "0", "between"),
        ("CALSYNC_HTTP_PER_HOST", "0", "between"),
        ("CALSYNC_HTTP_PER_HOST", "four", "whole number"),
        ("CALSYNC_HTTP_PORT", "70000", "between"),
        ("CALSYNC_ALLOW_PRIVATE_URLS", "maybe", "true/false"),
        ("CALSYNC_DATABASE_URL", "mysql://x/y", "sqlite:///"),
        ("CALSYNC_BASE_URL", "calsync.example.com", "http://"),
        ("CALSYNC_SMTP_URL", "mail.example.com:25", "smtp://"),
        ("CALSYNC_EXTERNAL_EDIT_POLICY", "ignore", "apply, revert"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path, name, value, words):
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, **{name: value})
    message = str(info.value)
    assert message.startswith(name + ":") and words in message and "\n" not in message


def test_database_password_is_not_echoed_in_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, CALSYNC_DATABASE_URL="mysql://root:hunter2@db/calsync")
    assert "hunter2" not in str(info.value)


def test_key_file_is_generated_with_mode_0600_and_reused(tmp_path):
    s = settings(tmp_path)
    first = Vault.from_settings(s)
    assert stat.S_IMODE(s.key_file.stat().st_mode) == 0o600
    token = first.encrypt({"password": "pw"})
    assert Vault.from_settings(s).decrypt(token) == {"password": "pw"}


def test_key_file_readable_by_others_is_refused(tmp_path):
    s = settings(tmp_path)
    Vault.from_settings(s)
    s.key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Vault.from_settings(s)


def test_invalid_secret_key_is_refused_without_showing_it(tmp_path):
    with pytest.raises(ConfigError) as info:
        Vault.from_settings(settings(tmp_path, CALSYNC_SECRET_KEY="not-a-key"))
    assert "not-a-key" not in str(info.value) and "CALSYNC_SECRET_KEY" in str(info.value)


def test_credentials_are_stored_encrypted(rt):
    actions.add_staff(rt, "ada@example.com", "Ada")
    staff = m.Staff.get()
    conn = m.Connection.create(staff=staff, provider="caldav", account="ada", credentials=rt.vault.encrypt({"password": "s3cret-pw"}))
    raw = m.db.execute_sql("select credentials from connection where id = ?", (conn.id,)).fetchone()[0]
    assert "s3cret-pw" not in raw
    assert rt.vault.decrypt(raw) == {"password": "s3cret-pw"}


def test_key_rotation_reencrypts_under_the_new_key(tmp_path):
    old, new = generate_key(), generate_key()
    rt = runtime.start(settings(tmp_path, CALSYNC_SECRET_KEY=old))
    try:
        actions.add_staff(rt, "ada@example.com", "Ada")
        m.Connection.create(staff=m.Staff.get(), provider="caldav", account="ada", credentials=rt.vault.encrypt({"password": "pw"}))
    finally:
        rt.close()
    rotated = runtime.start(settings(tmp_path, CALSYNC_SECRET_KEY=f"{new},{old}"))
    try:
        assert actions.rotate_key(rotated)["reencrypted"] == 1
        token = m.Connection.get().credentials
    finally:
        rotated.close()
    assert Vault.from_settings(settings(tmp_path, CALSYNC_SECRET_KEY=new)).decrypt(token) == {"password": "pw"}
    with pytest.raises(CredentialsUnreadable):
        Vault.from_settings(settings(tmp_path, CALSYNC_SECRET_KEY=old)).decrypt(token)


def test_secrets_never_show_in_repr(tmp_path):
    s = settings(tmp_path, CALSYNC_SECRET_KEY=generate_key(), SLACK_BOT_TOKEN="xoxb-test-token-value")
    assert "xoxb-test-token-value" not in repr(s)
