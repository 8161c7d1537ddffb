"""What Google and Microsoft providers share: a bearer token refreshed before it expires.

A refreshed token is kept in ``self.secrets`` and ``secrets_changed`` is set, so
whoever ran the provider stores the new credentials (encrypted).
"""

from __future__ import annotations

import time

import requests

from core import oauth
from core.http import URLNotAllowed
from core.providers.base import AuthRejected, Provider, transport_error

REFRESH_MARGIN = 120  # seconds before expiry


class OAuthProvider(Provider):
    secrets_changed = False

    @property
    def label(self) -> str:
        """The service as errors name it."""
        return self.name

    def token(self) -> str:
        if not self.secrets.get("refresh_token") and not self.secrets.get("access_token"):
            raise AuthRejected("calsync holds no sign-in for this account; relink it")
        if float(self.secrets.get("expires_at") or 0) - REFRESH_MARGIN <= time.time():
            self.secrets = oauth.refresh(self.settings, self.name, self.secrets, timeout=self.http.timeout)
            self.secrets_changed = True
        return self.secrets["access_token"]

    def api(self, method: str, url: str, **kwargs) -> requests.Response:
        """One API call with the bearer token; network trouble is Transient."""
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json", **kwargs.pop("headers", {})}
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except (URLNotAllowed, requests.RequestException) as exc:
            raise transport_error(exc, self.label) from None
