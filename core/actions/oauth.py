"""Google and Microsoft: the consent link, and the callback that connects or relinks."""

from __future__ import annotations

import datetime as dt

import models as m
from core import clock, incidents, lifecycle
from core.actions.common import (
    ActionError,
    InvalidInput,
    NotFoundError,
    _connection,
    _staff,
    audit,
)
from core.actions.connections import (
    _save_calendars,
    identify,
    sync_after_repair,
)
from core.actions.links import CHOICE_MINUTES
from core.actions.roles import choose_calendars
from core.actions.syncing import sync_now
from core.actions.views import connection_dict, connection_flags
from core.providers import OAUTH_PROVIDERS
from core.providers.base import ProviderError


def oauth_connect_url(rt, staff_email: str, provider: str, actor: str = "") -> dict:
    """The consent link that connects a Google or Microsoft calendar for a staff member."""
    from core import oauth

    staff = _staff(staff_email)
    if provider not in OAUTH_PROVIDERS:
        raise InvalidInput(f"{provider!r} is not signed into with OAuth; use `connect {provider}` with its options")
    try:
        url = oauth.start(rt, provider, "connect", staff=staff)
    except oauth.OAuthFailed as exc:
        raise ActionError(str(exc)) from None
    if actor:
        audit(actor, "connection.oauth_start", staff.email, provider)
    return {"staff": staff.email, "provider": provider, "url": url, "expires_in_minutes": 15}


def oauth_relink_url(rt, relink_token: str) -> str:
    """From a relink page of a Google/Microsoft connection to the provider's consent screen."""
    from core import oauth, relink

    link = relink.lookup(relink_token)
    conn = link.connection
    try:
        return oauth.start(rt, conn.provider, "relink", connection=conn, relink_token=relink_token)
    except oauth.OAuthFailed as exc:
        raise ActionError(str(exc)) from None


def oauth_callback(rt, provider: str, code: str, state: str, error: str = "") -> dict:
    """The provider sent the user back: finish connecting or relinking; returns the connection."""
    from core import oauth

    try:
        row, verifier = oauth.take_state(rt, provider, state)
        if error:
            raise oauth.OAuthFailed(
                "you did not allow calsync to use your calendar, so nothing was connected"
                if error == "access_denied"
                else f"{provider} ended the sign-in with an error ({error})"
            )
        secrets_ = oauth.exchange(rt, provider, code, verifier)
    except oauth.OAuthFailed as exc:
        raise ActionError(str(exc)) from None
    if row.purpose == "relink":
        conn = row.connection
        if conn is None:  # the connection went away (stop sync) while its owner was at the consent screen
            raise ActionError("this relink is for a connection that no longer exists; nothing was changed")
        prov = rt.provider_for(conn, secrets_)
        try:
            account = prov.account_id()
        except ProviderError as exc:
            raise ActionError(f"the new sign-in does not work: {exc.reason}") from None
        if account.lower() != conn.account.lower():
            raise ActionError(f"you signed in as {account}, but this connection is for {conn.account}: sign in with that account")
        result = _store_oauth_and_sync(rt, conn, secrets_, "relink")
        if row.relink_token_hash and result["status"] == m.ACTIVE:
            m.RelinkLink.update(used_at=clock.now()).where(m.RelinkLink.token_hash == row.relink_token_hash).execute()
        return {**result, "purpose": "relink", "delivered": incidents.delivered_since_repair(conn.id)}
    staff = row.staff
    if staff is None:
        raise ActionError("this sign-in was not started for a staff member; start again from the connect page")
    conn = m.Connection(staff=staff, provider=provider, server_url=rt.settings.oauth[provider].api_url)
    prov = rt.provider_for(conn, secrets_)
    try:
        conn.account = prov.account_id()
        infos = prov.discover()
    except ProviderError as exc:
        raise ActionError(f"could not connect: {exc.reason}") from None
    if not infos:
        raise ActionError("the account has no calendar that can hold events")
    identify(rt, conn, prov.secrets)
    with m.db.atomic():
        conn.credentials = rt.vault.encrypt(prov.secrets)
        lifecycle.begin(conn, "connect")
        _save_calendars(rt, conn, infos, None)
        # The consent that made it: only its browser may choose the calendar (oauth_choose_calendar).
        m.OAuthState.update(connection=conn).where(m.OAuthState.id == row.id).execute()
        choose = len(_choosable(conn)) > 1
        if choose:
            # In the same transaction as the connection: the scheduler never sees it due before the
            # person had CHOICE_MINUTES to choose, so nothing goes to a calendar nobody chose.
            m.Connection.update(next_sync_at=clock.now() + dt.timedelta(minutes=CHOICE_MINUTES)).where(m.Connection.id == conn.id).execute()
    audit(f"oauth:{staff.email}", "connection.connect", conn.id, f"{provider} {conn.account} for {staff.email}")
    warnings = [f"{f} account" for f in connection_flags(conn)]
    if choose:
        return {
            **connection_dict(m.Connection.get_by_id(conn.id)),
            "first_sync": None,
            "purpose": "connect",
            "warnings": warnings,
            "choose": True,
        }
    report = sync_now(rt, conn.id)[0]
    return {
        **connection_dict(m.Connection.get_by_id(conn.id)),
        "first_sync": report,
        "purpose": "connect",
        "warnings": warnings,
        "choose": False,
    }


# How long after the sign-in its browser may still choose the calendar (as long as a connect link lives).
CHOICE_WINDOW = dt.timedelta(hours=24)


def _choosable(conn: m.Connection) -> list[dict]:
    return [c for c in connection_dict(conn)["calendars"] if c.get("choosable", c["writable"])]


class ChoiceRefused(NotFoundError):
    """Not the sign-in that made this connection, or too long ago: nothing was changed."""


def oauth_choose_calendar(
    rt, provider: str, state: str, conn_id, calendar, *, busy: list[str] | None = None, write: list[str] | None = None
) -> dict:
    """The calendar the appointments of a connection just made by signing in go to.

    Only for the consent ``state`` that made it (kept by the browser that came back from the
    provider), a connect (never a relink), the same staff member, within CHOICE_WINDOW of the
    sign-in; the first sync runs at once (choose_calendars, which also sets the ``busy`` and ``write`` roles
    when the page asked for them).
    """
    from core import oauth

    row = (
        m.OAuthState.get_or_none(m.OAuthState.state_hash == oauth._hash(state), m.OAuthState.provider == provider)
        if state and len(state) <= 200
        else None
    )
    try:
        conn = _connection(conn_id)
    except ActionError:  # not a number, or no such connection: the same answer as a foreign one
        conn = None
    if (
        row is None
        or conn is None
        or row.purpose != "connect"
        or row.used_at is None
        or row.connection_id != conn.id
        or row.staff_id != conn.staff_id
        or conn.provider != provider
        or clock.utc(row.used_at) + CHOICE_WINDOW <= clock.utc(clock.now())
    ):
        raise ChoiceRefused(
            "this sign-in cannot choose a calendar any more; /calsync status in Slack shows "
            "your connections, and /calsync primary chooses the calendar"
        )
    result = choose_calendars(rt, conn.id, primary=str(calendar), busy=busy, write=write, actor=f"oauth:{conn.staff.email}")
    return {**result, "warnings": [f"{f} account" for f in connection_flags(conn)]}


def _store_oauth_and_sync(rt, conn: m.Connection, secrets_: dict, cause: str) -> dict:
    conn.credentials = rt.vault.encrypt(secrets_)
    conn.save()
    audit(f"oauth:{conn.staff.email}", "connection.relink", conn.id)
    report = sync_after_repair(rt, conn, cause)
    return {**connection_dict(m.Connection.get_by_id(conn.id)), "sync": report.to_dict()}
