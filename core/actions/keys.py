"""Keys: host API keys and the credential vault's rotation."""

from __future__ import annotations

import models as m
from core import clock
from core.actions.common import ActionError, InvalidInput, NotFoundError, _iso, audit


def apikey_create(rt, name: str, actor: str = "") -> dict:
    from core import hostapi

    try:
        key, row = hostapi.create_key(name, created_by=actor)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    except KeyError as exc:
        raise ActionError(exc.args[0]) from None
    audit(actor, "apikey.create", row.name)
    return {"name": row.name, "key": key, "prefix": row.prefix, "created_at": _iso(row.created_at)}


def apikey_revoke(rt, name: str, actor: str = "") -> dict:
    row = m.ApiKey.get_or_none(m.ApiKey.name == (name or "").strip(), m.ApiKey.revoked_at.is_null())
    if row is None:
        raise NotFoundError(f"no active API key named {name!r}; see `apikey list`")
    row.revoked_at = clock.now()
    row.save()
    audit(actor, "apikey.revoke", row.name)
    return {"name": row.name, "revoked_at": _iso(row.revoked_at)}


def apikey_list(rt) -> list[dict]:
    return [
        {
            "name": k.name,
            "prefix": k.prefix,
            "created_at": _iso(k.created_at),
            "created_by": k.created_by,
            "last_used_at": _iso(k.last_used_at),
            "revoked": k.revoked_at is not None,
        }
        for k in m.ApiKey.select().order_by(m.ApiKey.name)
    ]


def rotate_key(rt, actor: str = "") -> dict:
    """Re-encrypt every stored credential under the newest key."""
    count = 0
    with m.db.atomic():
        for conn in m.Connection.select().where(m.Connection.credentials != ""):
            conn.credentials = rt.vault.rotate(conn.credentials)
            conn.save()
            count += 1
    audit(actor, "keys.rotate", "", f"{count} credential(s) re-encrypted")
    return {"reencrypted": count}
