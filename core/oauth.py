"""OAuth 2.0 for Google and Microsoft: authorization code with state and PKCE (authlib).

``start`` keeps the state (as a hash) and the PKCE verifier (encrypted) for 15
minutes and returns the provider's consent URL; the web server's callback
calls ``finish``, which checks the state, exchanges the code, checks that
every required scope was granted, and then either creates the connection
(connect) or repairs the same connection (relink). Refresh tokens are stored
encrypted with the other credentials; providers refresh access tokens before
they expire (``refresh``), and ``invalid_grant`` becomes ``relink_required``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets as pysecrets
import time

import models as m
from core import clock, netguard
from core.providers.base import AuthRejected, Transient

STATE_TTL = dt.timedelta(minutes=15)
OAUTH_PROVIDERS = ("google", "microsoft")

SCOPES = {
    "google": ("https://www.googleapis.com/auth/calendar",),
    "microsoft": ("offline_access", "Calendars.ReadWrite", "User.Read"),
}
REQUIRED_SCOPES = {
    "google": ("https://www.googleapis.com/auth/calendar",),
    "microsoft": ("Calendars.ReadWrite",),
}
EXTRA_AUTH_PARAMS = {
    "google": {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
    "microsoft": {"prompt": "select_account"},
}


def provider_name(provider: str) -> str:
    from core.notices import provider_name as name

    return name(provider)


def _first_line(text) -> str:
    # Microsoft appends "Trace ID: … Correlation ID: …" lines: not for the user's page.
    return str(text or "").strip().splitlines()[0] if text else ""


class OAuthFailed(Exception):
    """The sign-in did not work; ``str()`` says why in plain words."""


def client(rt, provider: str):
    found = rt.settings.oauth.get(provider)
    if found is None:
        raise OAuthFailed(f"sign-in with {provider} is not configured here (CALSYNC_{provider.upper()}_CLIENT_ID and _CLIENT_SECRET)")
    return found


def redirect_uri(rt, provider: str) -> str:
    return f"{rt.settings.base_url}/oauth/{provider}/callback"


def _session(rt, provider: str, **kwargs):
    from authlib.integrations.requests_client import OAuth2Session

    c = client(rt, provider)
    return netguard.bounded(
        OAuth2Session(
            c.client_id,
            c.client_secret.reveal(),
            scope=" ".join(SCOPES[provider]),
            redirect_uri=redirect_uri(rt, provider),
            code_challenge_method="S256",
            **kwargs,
        )
    )


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start(
    rt, provider: str, purpose: str, *, staff: m.Staff | None = None, connection: m.Connection | None = None, relink_token: str = ""
) -> str:
    """The consent URL for a new connection (``staff``) or a relink (``connection``)."""
    c = client(rt, provider)
    state = pysecrets.token_urlsafe(32)
    verifier = pysecrets.token_urlsafe(64)
    now = clock.now()
    m.OAuthState.create(
        state_hash=_hash(state),
        provider=provider,
        purpose=purpose,
        staff=staff or (connection.staff if connection is not None else None),
        connection=connection,
        relink_token_hash=_hash(relink_token) if relink_token else "",
        secret=rt.vault.encrypt({"code_verifier": verifier}),
        created_at=now,
        expires_at=now + STATE_TTL,
    )
    url, _ = _session(rt, provider).create_authorization_url(c.auth_url, state=state, code_verifier=verifier, **EXTRA_AUTH_PARAMS[provider])
    return url


def take_state(rt, provider: str, state: str) -> tuple[m.OAuthState, str]:
    """The consent this callback belongs to (spent now); raises OAuthFailed for a stale or forged one."""
    row = m.OAuthState.get_or_none(m.OAuthState.state_hash == _hash(state or ""), m.OAuthState.provider == provider)
    if row is None:
        raise OAuthFailed("this sign-in was not started here (unknown state); start again from your link")
    if row.used_at is not None:
        raise OAuthFailed("this sign-in was already completed; start again from your link if needed")
    if row.expires_at <= clock.now():
        raise OAuthFailed("this sign-in took longer than 15 minutes; start again from your link")
    spent = m.OAuthState.update(used_at=clock.now()).where(m.OAuthState.id == row.id, m.OAuthState.used_at.is_null()).execute()
    if not spent:
        raise OAuthFailed("this sign-in was already completed")
    return row, rt.vault.decrypt(row.secret)["code_verifier"]


def exchange(rt, provider: str, code: str, verifier: str) -> dict:
    """Trade the authorization code for tokens; checks the granted scopes."""
    from authlib.integrations.base_client.errors import OAuthError

    c = client(rt, provider)
    try:
        with netguard.within(rt.settings.http_deadline):  # the whole call, not each read
            token = _session(rt, provider).fetch_token(c.token_url, code=code, code_verifier=verifier, timeout=rt.settings.http_timeout)
    except OAuthError as exc:
        raise OAuthFailed(
            f"{provider_name(provider)} refused the sign-in ({exc.error}): {_first_line(exc.description) or 'no details'}"
        ) from None
    except Exception as exc:  # noqa: BLE001 — network trouble reaching the token endpoint
        raise OAuthFailed(f"could not reach {provider_name(provider)}'s sign-in service ({exc.__class__.__name__}); try again") from None
    # Microsoft may answer scopes in another case or as full URIs (https://graph.microsoft.com/Calendars.ReadWrite).
    granted = {g.lower().removeprefix("https://graph.microsoft.com/") for g in str(token.get("scope", "")).split()}
    missing = [s for s in REQUIRED_SCOPES[provider] if granted and s.lower() not in granted]
    if missing:
        raise OAuthFailed(
            f"the consent is missing a permission calsync needs ({', '.join(missing)}): sign in again and allow "
            "calsync to see and edit your calendars"
        )
    if not token.get("refresh_token"):
        raise OAuthFailed(
            f"{provider_name(provider)} gave no refresh token, so calsync could not keep syncing; sign in again and allow offline access"
        )
    return _secrets_from(token)


def _secrets_from(token: dict, previous: dict | None = None) -> dict:
    expires_at = token.get("expires_at") or (time.time() + float(token.get("expires_in") or 3600))
    return {
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token") or (previous or {}).get("refresh_token", ""),
        "expires_at": float(expires_at),
        "scope": token.get("scope", (previous or {}).get("scope", "")),
    }


def refresh(rt_settings, provider: str, secrets: dict, timeout: float = 20.0) -> dict:
    """New access token from the refresh token; invalid_grant is the user's access being gone."""
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    c = rt_settings.oauth.get(provider)
    if c is None:
        raise AuthRejected(f"sign-in with {provider} is no longer configured here (client id/secret missing)")
    session = netguard.bounded(OAuth2Session(c.client_id, c.client_secret.reveal()))
    try:
        with netguard.within(rt_settings.http_deadline):  # the whole call, not each read
            token = session.refresh_token(c.token_url, refresh_token=secrets.get("refresh_token", ""), timeout=timeout)
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "unauthorized_client", "invalid_client"):
            raise AuthRejected(
                f"{provider_name(provider)} no longer accepts calsync's access (the permission was revoked, expired, or the "
                "password changed)",
                f"{exc.error}: {exc.description or ''}".strip(),
            ) from None
        raise Transient(f"{provider_name(provider)}'s sign-in service failed ({exc.error})", str(exc.description or "")) from None
    except Exception as exc:  # noqa: BLE001 — network trouble reaching the token endpoint: retried later
        raise Transient(f"could not reach {provider_name(provider)}'s sign-in service ({exc.__class__.__name__})") from None
    return _secrets_from(token, secrets)
