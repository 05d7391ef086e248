"""The dashboard's login session: a signed cookie, never the token in a URL.

Logging in with the admin token sets ``journeyc_ui``, a value signed (itsdangerous,
HMAC-SHA1 with a key derived from the admin token) and stamped with its time, so
changing the token ends every session and a session lasts :data:`MAX_AGE_S`. The
cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page can make the browser send it: a forged form post arrives without it) and
limited to ``/ui``.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "journeyc_ui"
MAX_AGE_S = 12 * 3600
PATH = "/ui"
_SALT = "journeyc-ui-session"


class Sessions:
    """Makes and checks session cookies for one admin token."""

    def __init__(self, admin_token: str) -> None:
        key = hmac.new(admin_token.encode(), _SALT.encode(), hashlib.sha256).hexdigest()
        self._signer = URLSafeTimedSerializer(key, salt=_SALT)
        self._token = admin_token

    def token_ok(self, given: str) -> bool:
        """Whether ``given`` is the admin token (compared in constant time)."""
        return hmac.compare_digest(given.encode(), self._token.encode())

    def new(self) -> str:
        """A fresh cookie value."""
        return self._signer.dumps({"admin": True})

    def valid(self, value: str | None) -> bool:
        """Whether ``value`` is a cookie this token signed less than MAX_AGE_S ago."""
        if not value:
            return False
        try:
            data = self._signer.loads(value, max_age=MAX_AGE_S)
        except BadSignature:  # SignatureExpired is one too
            return False
        return isinstance(data, dict) and data.get("admin") is True
