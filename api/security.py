"""Signing keys and JWT access tokens (RFC 9068 profile, ES256, `kid` in the header)."""

from __future__ import annotations

import os
import time
import uuid

from cachetools import LRUCache
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from api.errors import unauthorized
from hub.keyfiles import read_or_create
from hub.settings import Settings
from hub.signing_keys import load_signing_key, rotate_signing_key, verification_keys

__all__ = ["load_signing_key", "rotate_signing_key", "verification_keys"]

ALGORITHM = "ES256"


def issue_token(key: ECKey, settings: Settings, *, client_id: str, role: str,
                department: str, scopes: list[str],
                attributes: dict[str, str] | None = None) -> tuple[str, dict]:
    """A signed access token and its claims; `attributes` (the caller's, which grants' row
    filters compare rows with) travel as one claim, apart from the registered ones."""
    now = int(time.time())
    claims = {
        "iss": settings.token_issuer, "aud": settings.audience, "sub": client_id,
        "client_id": client_id, "iat": now, "nbf": now, "exp": now + settings.token_ttl_seconds,
        "jti": uuid.uuid4().hex, "scope": " ".join(scopes), "role": role,
        "department": department,
    }
    if attributes:
        claims["attributes"] = dict(attributes)
    return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt"}, claims, key), claims


class VerifiedTokens:
    """Verifies access tokens (signature, issuer, audience, times; else 401), remembering
    the claims of the `size` good ones used most recently (none with size 0).

    A client sends the same token with every request until it expires. Its signature
    (ES256, ~0.1 ms) is checked once per worker; the claims (issuer, audience, expiry,
    not-before) are checked again on every use, so a remembered token still expires on
    time. Revocation is not cached here: the caller checks it on every request. Only the
    event loop calls this (the auth dependencies are async): the cache needs no lock."""

    def __init__(self, keys: KeySet, settings: Settings, size: int = 10_000) -> None:
        self.keys, self.size = keys, size
        self._registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": settings.token_issuer},
            aud={"essential": True, "value": settings.audience},
            exp={"essential": True}, sub={"essential": True}, jti={"essential": True},
            leeway=5,
        )
        self._known: LRUCache[str, dict] = LRUCache(maxsize=size)

    def claims(self, token: str) -> dict:
        try:
            claims = self._known.get(token) or self._verify_signature(token)
            self._registry.validate(claims)
        except (JoseError, ValueError) as exc:
            self._known.pop(token, None)
            raise unauthorized(f"the access token is not valid: {exc}") from None
        return claims

    def _verify_signature(self, token: str) -> dict:
        claims = jwt.decode(token, self.keys, algorithms=[ALGORITHM]).claims
        if self.size:  # an LRUCache of maxsize 0 refuses every entry with ValueError
            self._known[token] = claims
        return claims


def load_pseudonym_key(settings: Settings) -> bytes:
    """Key for keyed-hash pseudonyms: HUB_PSEUDONYM_KEY, or a random one kept under HUB_HOME."""
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode()
    return read_or_create(settings.keys_dir / "pseudonym.key", lambda: os.urandom(32))
