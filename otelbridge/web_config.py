"""TLS and basic auth for /metrics, in the format of Prometheus's web config file.

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt, as Prometheus uses; or sha256:<hex> without extra packages

Only bcrypt needs the optional `bcrypt` package (a bcrypt hash without it is a configuration
error at start); `sha256:` hashes work with the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from otelbridge.config import ConfigError, read_yaml


@dataclass(frozen=True)
class WebConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    users: dict[str, str] = field(default_factory=dict)  # user -> password hash

    def tls_context(self) -> ssl.SSLContext | None:
        if self.cert_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        stored = self.users.get(user)
        return stored is not None and _check(password, stored)


def _check(password: str, stored: str) -> bool:
    if stored.startswith("sha256:"):
        digest = hashlib.sha256(password.encode()).hexdigest()
        return hmac.compare_digest(digest, stored.removeprefix("sha256:"))
    if stored.startswith("$2"):
        try:
            import bcrypt  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return False
        return bool(bcrypt.checkpw(password.encode(), stored.encode()))
    return False


def _bcrypt_available() -> bool:
    try:
        import bcrypt  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def load(path: Path) -> WebConfig:
    raw = read_yaml(path)
    unknown = set(raw) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise ConfigError(f"web_config_file: unknown key {sorted(unknown)[0]!r} in {path}")
    tls = raw.get("tls_server_config") or {}
    users = raw.get("basic_auth_users") or {}
    if not isinstance(tls, dict) or not isinstance(users, dict):
        raise ConfigError(
            f"web_config_file: tls_server_config and basic_auth_users must be mappings in {path}"
        )
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if (cert is None) != (key is None):
        raise ConfigError("web_config_file: tls_server_config needs both cert_file and key_file")
    base = path.parent
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("sha256:", "$2")):
            raise ConfigError(f"web_config_file: basic_auth_users.{user} must be a bcrypt or sha256: hash")
        if hashed.startswith("$2") and not _bcrypt_available():
            # Refusing to start beats answering every scrape with 401.
            raise ConfigError(
                f"web_config_file: basic_auth_users.{user} is a bcrypt hash but the bcrypt package is "
                "not installed (pip install bcrypt, or use a sha256: hash)"
            )
    return WebConfig(
        cert_file=base / cert if cert else None,
        key_file=base / key if key else None,
        users={str(u): str(h) for u, h in users.items()},
    )
