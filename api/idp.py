"""Tokens from the city's existing identity provider, accepted beside the hub's own.

Configured by issuer and JWKS URL (HUB_IDP_*). A token whose `iss` is that issuer is
verified with the provider's published keys; its role claim is mapped to a hub role
through HUB_IDP_ROLE_MAP, and the department and scopes come from that role in the
policy files, so a provider cannot hand out scopes the hub's policies do not give.
Named claims become the caller's attributes through HUB_IDP_ATTRIBUTE_MAP (claim ->
attribute), which grants' row filters compare rows with; the role's own attributes win.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from access_policies import Policy
from api.errors import ApiError, forbidden, unauthorized
from hub.settings import Settings

ALGORITHMS = ["RS256", "ES256"]
REFRESH_AT_MOST_EVERY = 60.0  # seconds: an unknown kid refetches the keys, but not in a loop


class ExternalIdP:
    def __init__(self, settings: Settings) -> None:
        if not settings.idp_jwks_url:
            raise ValueError("HUB_IDP_ISSUER is set: set HUB_IDP_JWKS_URL to the identity "
                             "provider's JWKS address too")
        self.issuer = settings.idp_issuer
        self.jwks_url = settings.idp_jwks_url
        self.audience = settings.idp_audience or settings.audience
        self.role_claim = settings.idp_role_claim
        self.role_map = settings.idp_role_map
        self.attribute_map = settings.idp_attribute_map
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def handles(self, token: str) -> bool:
        """Whether the (unverified) token names this provider as its issuer."""
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return False
        return isinstance(claims, dict) and claims.get("iss") == self.issuer

    def verify(self, token: str, policy: Policy) -> tuple[dict, str]:
        """The verified claims and the hub role they map to."""
        claims = self._decode(token)
        given = claims.get(self.role_claim) or []
        given = [given] if isinstance(given, str) else list(given)
        roles = [self.role_map[g] for g in given if self.role_map.get(g) in policy.roles]
        if not roles:
            raise forbidden(f"none of the identity provider's roles {given} maps to a hub role")
        return claims, roles[0]

    def attributes(self, claims: dict) -> dict[str, str]:
        """The caller's attributes: each mapped claim the token carries as a plain value
        (a list or object claim is skipped, never flattened into something it did not say)."""
        return {attribute: str(claims[claim]) for claim, attribute in self.attribute_map.items()
                if isinstance(claims.get(claim), (str, int, float)) and claims[claim] != ""}

    def _decode(self, token: str) -> dict:
        try:
            try:
                decoded = jwt.decode(token, self._keyset(), algorithms=ALGORITHMS)
            except ValueError:  # an unknown kid: the provider may have rotated its keys
                decoded = jwt.decode(token, self._keyset(refresh=True), algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True}, sub={"essential": True}, leeway=5,
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise unauthorized(f"the identity provider's token is not valid: {exc}") from None
        return decoded.claims

    def _keyset(self, refresh: bool = False) -> KeySet:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > REFRESH_AT_MOST_EVERY
            if self._keys is None or (refresh and stale):
                self._keys = self._fetch()
                self._fetched_at = time.monotonic()
            return self._keys

    def _fetch(self) -> KeySet:
        try:
            response = httpx.get(self.jwks_url, timeout=5)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(503, "idp_unavailable", "cannot fetch the identity provider's keys "
                           f"from {self.jwks_url}: {exc}") from None
