"""Relink links: single-use, expiring, hash-only, and a reissue replaces the earlier ones."""

from __future__ import annotations

import datetime as dt

import pytest

import models as m
from core import actions, clock, relink


@pytest.fixture
def broken(story):
    story.sync()
    story.server.set_password("new-pass-1")
    story.sync()
    return story


def _token(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def test_only_the_hash_of_a_link_is_stored(broken):
    url = actions.issue_relink(broken.rt, broken.conn_id, via=("email",))["url"]
    token = _token(url)
    stored = [row.token_hash for row in m.RelinkLink.select()]
    assert token not in stored and relink.token_hash(token) in stored


def test_a_reissued_link_replaces_the_earlier_one(broken):
    old = _token(actions.issue_relink(broken.rt, broken.conn_id, via=("email",))["url"])
    new = _token(actions.issue_relink(broken.rt, broken.conn_id, via=("email",))["url"])
    with pytest.raises(relink.LinkInvalid) as info:
        actions.relink_page(broken.rt, old)
    assert info.value.why == "replaced"
    assert actions.relink_page(broken.rt, new)["account"] == broken.server.username


def test_a_link_expires_after_seven_days(broken):
    token = _token(actions.issue_relink(broken.rt, broken.conn_id, via=("email",))["url"])
    later = clock.now() + dt.timedelta(days=7, seconds=1)
    clock.set_now(lambda: later)
    with pytest.raises(relink.LinkInvalid) as info:
        actions.relink_page(broken.rt, token)
    assert info.value.why == "expired"


def test_a_wrong_password_keeps_the_link_and_the_right_one_spends_it(broken):
    token = _token(actions.issue_relink(broken.rt, broken.conn_id, via=("email",))["url"])
    with pytest.raises(actions.ActionError, match="do not work"):
        actions.complete_relink(broken.rt, token, password="still-wrong")
    page = actions.relink_page(broken.rt, token)
    assert page["status"] == "relink_required" and page["form"] == "password"
    result = actions.complete_relink(broken.rt, token, password="new-pass-1")
    assert result["ok"] is True and result["id"] == broken.conn_id
    with pytest.raises(relink.LinkInvalid) as info:
        actions.complete_relink(broken.rt, token, password="new-pass-1")
    assert info.value.why == "used"


def test_the_opened_incident_carries_a_link_that_works(broken):
    notification = m.Notification.get(m.Notification.event == "incident.opened")
    url = broken.rt.vault.decrypt(notification.secret)["relink_url"]
    assert actions.relink_page(broken.rt, _token(url))["reason"].startswith("the CalDAV server rejected")


def test_unknown_tokens_say_nothing_about_what_was_wrong(rt):
    for token in ("", "x" * 500, "not-a-token"):
        with pytest.raises(relink.LinkInvalid) as info:
            relink.lookup(token)
        assert info.value.why == "unknown"
