"""What every action shares: the errors adapters turn into exit codes and messages, the audit
trail, the lookups of a staff member or connection by what a user typed, and one-off link tokens."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
import zoneinfo

import models as m
from core import clock
from core.text import check_line, control_characters

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ActionError(Exception):
    """The action could not be done; ``str()`` says why in plain words (exit code 1)."""

    exit_code = 1


class InvalidInput(ActionError):
    """The request itself is wrong (a bad e-mail, time, zone...): exit code 2."""

    exit_code = 2


class NotFoundError(ActionError):
    pass


class InvalidId(InvalidInput):
    """An appointment id outside :data:`APPOINTMENT_ID_CHARACTERS` or too long; the API answers 400 (the id is in the URL)."""


def _iso(value: dt.datetime | str | None) -> str | None:
    """A time as ISO text in UTC ("…Z"); text is taken as already in that form (``models.iso_from_db``)."""
    if isinstance(value, str):
        return value
    return clock.utc(value).isoformat().replace("+00:00", "Z") if value else None


def audit(actor: str, action: str, target: str | int = "", detail: str = "", result: str = "ok") -> None:
    m.AuditEntry.create(actor=actor or "system", action=action, target=str(target), detail=detail, result=result)


def audited(action: str):
    """Record a support action that failed (success is recorded by the action, with its details)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(rt, *args, actor: str = "", **kwargs):
            try:
                return fn(rt, *args, actor=actor, **kwargs)
            except ActionError as exc:
                if actor:
                    target = args[0] if args else kwargs.get("conn_id", "")
                    audit(actor, action, target if target is not None else "", str(exc), result="failed")
                raise

        return wrapper

    return decorate


def _valid_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("Europe"), a name too long for a file
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None
    return name


def _staff(email: str) -> m.Staff:
    try:
        staff = m.Staff.get_or_none(m.Staff.email == email.strip().lower())
    except ValueError:  # PostgreSQL (psycopg2) refuses a NUL even in a query: it holds no such address
        staff = None
    if staff is None:
        raise NotFoundError(f"no staff member with e-mail {email!r}; add one with `staff add`")
    return staff


def _connection(conn_id) -> m.Connection:
    try:
        number = int(conn_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"{conn_id!r} is not a connection id (a number; see `status`)") from None
    conn = m.Connection.get_or_none(m.Connection.id == number)
    if conn is None:
        raise NotFoundError(f"no connection with id {number}; see `status` for the ids")
    return conn


# Appointment ids travel in URLs and iCalendar text: a small set that needs no escaping anywhere.
APPOINTMENT_ID_CHARACTERS = "A-Z a-z 0-9 . _ : @ ~ + = -"
APPOINTMENT_ID_MAX = 200
_APPOINTMENT_ID = re.compile(r"[A-Za-z0-9._:@~+=-]+")


def _check_appointment_id(value) -> str:
    """``value`` when it is a valid new appointment id; else InvalidId (length or characters: the id is
    part of the URL, so the API answers 400)."""
    rule = f"1 to {APPOINTMENT_ID_MAX} characters of {APPOINTMENT_ID_CHARACTERS}"
    if not isinstance(value, str) or not value or len(value) > APPOINTMENT_ID_MAX:
        raise InvalidId(f"the appointment id must be {rule}")
    if value in (".", "..") or not _APPOINTMENT_ID.fullmatch(value):
        found = control_characters(value) or sorted({f"{c!r}" for c in value if not _APPOINTMENT_ID.fullmatch(c)})
        detail = f" (found {', '.join(found[:5])})" if found else ""
        raise InvalidId(f"the appointment id must be {rule}, and not '.' or '..'{detail}")
    return value


# Times the host sends: anything outside these bounds is a mistake, and near datetime's
# own limits (years 1 and 9999) converting between zones overflows.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
MAX_OFFSET = dt.timedelta(hours=14)  # the widest UTC offset in use (Kiribati)


def _parse_time(value, tz: dt.tzinfo, what: str) -> dt.datetime:
    """An aware UTC time between EARLIEST and LATEST, or InvalidInput that says which rule it broke."""
    example = "such as 2026-12-01T10:00:00+01:00"
    parsed: dt.datetime | None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value or "").strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text) if len(text) <= 64 else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise InvalidInput(f"{what} {_shown(value)} is not an ISO 8601 date-time {example}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) > MAX_OFFSET:
        raise InvalidInput(f"{what} {_shown(value)} has a UTC offset beyond ±14:00")
    try:
        moment = parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise InvalidInput(f"{what} {_shown(value)} is outside the supported range 1970-01-01 to 2200-01-01 (UTC)")
    return moment


def _shown(value) -> str:
    """A time as typed, short and on one line, for an error message."""
    text = repr(str(value)) if not isinstance(value, dt.datetime) else repr(value.isoformat())
    return text if len(text) <= 70 else text[:60] + "…'"


def _validate_url(rt, url: str, what: str) -> str:
    from core.netguard import URLNotAllowed, check_url  # the socket guard: only for commands that take a URL

    url = (url or "").strip()
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    try:
        check_url(url, rt.settings.allow_private_urls)
    except URLNotAllowed as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    return url


ONE_OFF_TTL = dt.timedelta(hours=24)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_one_off(model, **owner) -> tuple[str, dt.datetime]:
    """A one-off link row (download, connect): only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    expires = clock.now() + ONE_OFF_TTL
    model.create(token_hash=_token_hash(token), expires_at=expires, **owner)
    return token, expires


def _usable_one_off(model, token: str):
    """The link row for ``token`` if it is known, unused and unexpired; else None."""
    if not token or len(token) > 100:
        return None
    link = model.get_or_none(model.token_hash == _token_hash(token))
    if link is None or link.used_at is not None or link.expires_at <= clock.now():
        return None
    return link


def _spend_one_off(model, link) -> bool:
    """Mark it used; False when another request spent it first."""
    return model.update(used_at=clock.now()).where(model.id == link.id, model.used_at.is_null()).execute() == 1


def new_token() -> str:
    return secrets.token_urlsafe(32)


def one_line(value: str, what: str, max_length: int) -> str:
    """A one-line field as stored: no CR/LF, NUL, ESC or bidi controls (they break e-mail headers and
    terminals, and hide text), refused with InvalidInput before anything is stored."""
    try:
        return check_line(value, what, max_length)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def find_calendar(calendars: list[m.Calendar], calendar: str) -> m.Calendar:
    """A calendar of the connection by its id or its name (either as the listing shows it)."""
    wanted = str(calendar).strip().lower()
    found = next((c for c in calendars if wanted == str(c.id)), None) or next(
        (c for c in calendars if wanted in (c.name.lower(), c.remote_id.lower())), None
    )
    if found is None:
        names = ", ".join(f"{c.id}: {c.name}" for c in calendars) or "none"
        raise InvalidInput(f"no calendar {calendar!r} in this account (calendars: {names})")
    return found
