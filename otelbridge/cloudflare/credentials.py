"""API credentials, kept out of every repr, log line and error message."""

from __future__ import annotations

from dataclasses import dataclass, field


class Secret:
    """A string that never shows itself: repr and str print a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Credentials:
    """Either an API token (preferred) or the legacy e-mail + global API key pair."""

    token: Secret | None = None
    email: str | None = None
    key: Secret | None = field(default=None)

    def headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token.reveal()}"}
        if self.email is not None and self.key is not None:
            return {"X-Auth-Email": self.email, "X-Auth-Key": self.key.reveal()}
        raise ValueError("no Cloudflare credentials")

    def secrets(self) -> list[str]:
        """Raw secret values, for scrubbing them from any text that leaves the process."""
        return [s.reveal() for s in (self.token, self.key) if s is not None and s.reveal()]

    @property
    def identity(self) -> str:
        """A label for the credential that reveals nothing: the rate-limit budget is per credential."""
        return "token" if self.token is not None else f"key:{self.email}"
