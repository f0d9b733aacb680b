"""Robot targets (WeCom, DingTalk): the robot's key and mention options, however given.

A target is the key, `secret:NAME`, or the robot's webhook URL as the vendor shows it,
each optionally followed by `?options`. Only the key is taken from a URL: messages always
go to the operator's configured base URL, so a robot target cannot aim the worker anywhere.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qs, urlsplit

import httpx

from ambient.clients.notify.errors import PermanentNotifyError, TransientNotifyError
from ambient.clients.notify.http_errors import post_json
from ambient.clients.notify.secrets import SecretResolver

URL_PREFIXES = ("http://", "https://")


def robot_address(
    secrets: SecretResolver, target: str, key_param: str
) -> tuple[str, dict[str, list[str]]]:
    """(key, options) of a robot target; a URL's fragment (DingTalk #SIGN_SECRET) is kept."""
    if target.startswith(URL_PREFIXES):
        reference, options = target, ""
    else:
        reference, _, options = target.partition("?")
    value = secrets.resolve(reference)
    if value.startswith(URL_PREFIXES):
        parts = urlsplit(value)
        query = parse_qs(parts.query)
        key = (query.pop(key_param, [""]) or [""])[0]
        if parts.fragment:
            key += "#" + parts.fragment
    else:
        key, _, inline = value.partition("?")
        query = parse_qs(inline)
    for name, values in parse_qs(options).items():
        query.setdefault(name, []).extend(values)
    return key, query


def listed(options: dict[str, list[str]], name: str) -> list[str]:
    """The comma-separated values of an option, flattened."""
    return [item for value in options.get(name, []) for item in value.split(",") if item]


async def post_to_robot(
    http: httpx.AsyncClient,
    url: str,
    payload: dict[str, object],
    request_timeout: float,
    vendor: str,
    rate_limited: Collection[int],
) -> None:
    """POST to a robot; its ``errcode`` answer as a notify error (rate limits are transient)."""
    body = (await post_json(http, url, payload, request_timeout=request_timeout)).json()
    code = int(body.get("errcode", 0))
    if code in rate_limited:
        raise TransientNotifyError(f"{vendor} rate limit ({code})")
    if code != 0:
        raise PermanentNotifyError(f"{vendor} errcode {code}: {body.get('errmsg')}")
