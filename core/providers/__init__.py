"""Calendar providers behind one contract (see :mod:`core.providers.base`)."""

from __future__ import annotations

from core.providers.base import (  # noqa: F401 (the package's public names)
    AlreadyExists,
    AuthRejected,
    BadData,
    CalendarGone,
    CalendarInfo,
    Changes,
    NotFound,
    PreconditionFailed,
    Provider,
    ProviderError,
    RemoteItem,
    SyncTokenInvalid,
    Transient,
    UrlRefused,
    WriteForbidden,
)

PROVIDERS = ("caldav", "ics", "google", "microsoft")
OAUTH_PROVIDERS = ("google", "microsoft")


def provider_class(name: str) -> type[Provider]:
    if name == "caldav":
        from core.providers.caldav import CalDAVProvider

        return CalDAVProvider
    if name == "ics":
        from core.providers.ics_url import ICSURLProvider

        return ICSURLProvider
    if name == "google":
        from core.providers.google import GoogleProvider

        return GoogleProvider
    if name == "microsoft":
        from core.providers.microsoft import MicrosoftProvider

        return MicrosoftProvider
    raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
