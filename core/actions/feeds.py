"""Private calendar feeds: show or reset a staff member's feed URL."""

from __future__ import annotations

from core.actions.common import _staff, audit, audited


@audited("feed.url")
def feed_url(rt, staff_email: str, actor: str = "") -> dict:
    from core import feeds

    staff = _staff(staff_email)
    token = feeds.ensure_token(rt, staff)
    if actor:
        audit(actor, "feed.url", staff.email)
    return {"staff": staff.email, "url": feeds.url_for(rt, token)}


@audited("feed.reset")
def feed_reset(rt, staff_email: str, actor: str = "") -> dict:
    from core import feeds

    staff = _staff(staff_email)
    token = feeds.reset(rt, staff)
    audit(actor, "feed.reset", staff.email, "the old feed URL stopped working")
    return {"staff": staff.email, "url": feeds.url_for(rt, token), "old_url_revoked": True}
