"""The kinds of value a setting holds beyond pydantic's own: a list given as JSON or commas, a
path with ~, an origin, a server secret with its users, a payload key (ambient/settings.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, SecretStr
from pydantic_settings import NoDecode

from ambient.domain.notify import sender_mailbox


def _list_setting(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list ({exc}); or give comma-separated values") from None
    return [item.strip() for item in text.split(",") if item.strip()]


# A list setting: a JSON list or comma-separated values (AMBIENT_FETCH_ALLOW_CIDRS=10.0.0.0/8).
StrList = Annotated[list[str], NoDecode, BeforeValidator(_list_setting)]
# A path setting: ~ expanded, as a .env file writes it (~/.kube/config) and no shell expands it.
UserPath = Annotated[Path, AfterValidator(Path.expanduser)]


def url_origin(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL, the port always said (None: no such URL)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port past 65535
        return None
    if port is None or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}"


def _origin_setting(value: str) -> str:
    parts = urlsplit(value.strip())
    origin = url_origin(value)
    if origin is None or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(
            f"{value!r} is no origin: give scheme://host[:port], e.g. https://prom.example"
        )
    return origin


class ServerSecret(BaseModel):
    """A server secret with the users (besides admins) allowed to reference it, and the origins
    it may be sent to as a metric source's credentials."""

    value: SecretStr
    users: list[str] = Field(default_factory=list)
    # None listed: it is no source's credentials (whoever names it chooses the source's URL).
    origins: list[Annotated[str, AfterValidator(_origin_setting)]] = Field(default_factory=list)


def is_sender(value: str) -> bool:
    try:
        sender_mailbox(value)
    except ValueError:
        return False
    return True


def as_key(value: str, where: str) -> None:
    """A payload key's refusal (ValueError) unless ``value`` is base64 of 32 bytes."""
    from ambient.codec import CodecKeyError, parse_key  # the codec's own rule, said as a setting's

    try:
        parse_key(value)
    except CodecKeyError as exc:
        raise ValueError(f"{where}{exc} (`ambient new-payload-key` makes one)") from None
