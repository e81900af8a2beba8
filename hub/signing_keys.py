"""The API's token signing keys under HUB_HOME/keys: created on first use, rotated with the
old key kept for verification until its tokens expire."""

from __future__ import annotations

import json
import time
from pathlib import Path

from joserfc.jwk import ECKey, KeySet

from hub.keyfiles import read_or_create


def load_signing_key(keys_dir: Path) -> ECKey:
    """The hub's private signing key, created on first use and kept under HUB_HOME/keys."""
    def make() -> bytes:
        key = ECKey.generate_key("P-256", auto_kid=True)
        return json.dumps(key.as_dict(private=True)).encode()

    return ECKey.import_key(json.loads(read_or_create(keys_dir / "signing.jwk.json", make)))


def rotate_signing_key(keys_dir: Path) -> ECKey:
    """Retire the current key (kept for verification until its tokens expire); make a new one."""
    current = keys_dir / "signing.jwk.json"
    if current.exists():
        old = json.loads(current.read_text())
        retired = {"key": old, "retired_at": time.time()}
        read_or_create(keys_dir / f"retired-{old['kid']}.jwk.json",
                       lambda: json.dumps(retired).encode())
        current.unlink()
    return load_signing_key(keys_dir)


def verification_keys(keys_dir: Path, current: ECKey, token_ttl: int) -> KeySet:
    """The current key plus retired ones whose tokens may not have expired yet."""
    keys = [current]
    for path in sorted(keys_dir.glob("retired-*.jwk.json")):
        retired = json.loads(path.read_text())
        if time.time() - retired["retired_at"] <= token_ttl + 60:  # + clock leeway
            keys.append(ECKey.import_key(retired["key"]))
    return KeySet(keys)
