"""Keep secrets out of logs: query strings, user info and token-like parameters redacted.

httpx logs every request URL at INFO ("HTTP Request: POST https://.../send?key=..."), and
webhook, WeCom and DingTalk URLs carry their tokens in the query. The redaction runs where
a log record is made (the record factory), so every handler and formatter (uvicorn's too)
only ever sees the redacted text. The Temporal Web UI's codec endpoint carries the codec token
in its path (/codec/ui/{token}, api/routers/codec.py): that segment is redacted too, and so is
a share link's signature (/share/{id}.{expiry}.{signature} opens a report without logging in).
Entry points (and the API factory) call `install_redaction()` once.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

REDACTED = "[redacted]"
URL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+@)?"
    r"(?P<rest>[^\s?#'\"<>]*)(?P<query>[?#][^\s'\"<>]*)?"
)
# A request path with a query, as uvicorn's access log shows it.
PATH_QUERY = re.compile(r"^(?P<path>/[^\s?]*)\?\S*$")
# The codec token in the Web UI's codec path.
CODEC_UI_PATH = re.compile(r"/codec/ui/[^/\s]+")
# A share link's signature (ambient/sharing.py); its id and expiry stay to tell links apart.
SHARE_SIGNATURE = re.compile(r"(/share/[0-9a-f]+\.[0-9]+\.)[A-Za-z0-9_-]+")
# The names of a key whose value is a secret, in a log line or a report (logtemplates).
SECRET_KEY = (
    r"(?:passw(?:or)?d|pwd|secret(?:[_\-]?key)?|token|api[_\-]?key|private[_\-]?key"
    r"|authorization|cookie|密码|口令|令牌|密钥)"
)
# key=value: those names, and those a URL's query carries a credential under.
SECRET_PARAMS = re.compile(
    rf"(?i)\b(?P<name>{SECRET_KEY}|access_token|apikey|key|sign|signature)"
    r"=(?P<value>[^&\s'\"]+)"
)
# What a masked value is written as in a log template (logtemplates.WILDCARD).
MASKED = "<*>"

# A secret written into a log line is no template word and no example text: the report is
# spoken, pushed and opened by share link. Its value follows a key that names one, in the
# same word ("password=x", "client_secret:x", "?access_token=x") or in the next words
# ("db_password: x", "Authorization: Bearer x"), its key quoted or not, the quote escaped
# as JSON inside a string writes it (body="{\"password\":\"x\"}"), after `=`, `:` or Ruby's
# `=>`. The names are SECRET_KEY's, one list.
SECRET_VALUE = re.compile(
    rf"(?i)((?:{SECRET_KEY}(?:\\?[\"'])?[ \t]*(?:=>|[=:：])[ \t]*|\bbearer[ \t]+)"
    r"(?:(?:bearer|basic|digest)[ \t]+)?)"
    rf"(?:{re.escape(MASKED)}|\\\"(?:[^\"\\]|\\[^\"])*\\\"|\"[^\"]*\"|'[^']*'|[^\s&;,\"'<>)\]}}]+)"
)
# What a word holding a secret holds, lower-cased: a cheap test before `SECRET_VALUE`.
SECRET_HINT = re.compile(
    "passw|pwd|secret|token|api.?key|private.?key|authorization|cookie|密码|口令|令牌|密钥"
)
# A word after which the next one is the secret ("password:", "Bearer").
SECRET_LEAD = re.compile(rf"(?i)(?:{SECRET_KEY}[\"']?[=:：]|\bbearer)\Z")
AUTH_SCHEME = re.compile(r"(?i)bearer|basic|digest")


def template_secrets_hidden(template: str) -> str:
    """A template with a secret its words' masking did not see hidden ("password = x", in
    three words); the common template, naming none, as it is at the cost of one search."""
    return hide_secrets(template) if SECRET_HINT.search(template.lower()) else template


def hide_secrets(text: str) -> str:
    """``text`` with the value of every secret in it (see `SECRET_VALUE`), and what
    `hide_in_urls` hides in a URL (its user info, query, token-like path segments), as `<*>`."""
    return SECRET_VALUE.sub(rf"\1{MASKED}", hide_in_urls(text, MASKED))


# A URL path segment that is a credential, not a word: webhook URLs (Slack, Discord, Feishu,
# Teams, Telegram) carry their token in the path. Hex or a UUID, or mixed case with digits.
TOKEN_SEGMENT = re.compile(
    r"(?=[^/]{20})(?:[0-9a-fA-F-]*(?:[0-9a-fA-F]-*){32}|(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9]).*)"
)


def hide_in_urls(text: str, mark: str = REDACTED) -> str:
    """``text`` with every URL's user info left out, its query and token-like path segments
    as ``mark``."""

    def url(match: re.Match[str]) -> str:
        query = f"?{mark}" if match["query"] else ""
        host, *path = match["rest"].split("/")
        shown = [mark if TOKEN_SEGMENT.fullmatch(part) else part for part in path]
        return "/".join([f"{match['scheme']}{host}", *shown]) + query

    return URL.sub(url, text)


def redact(text: str) -> str:
    """``text`` with URL user info, query strings, token-like path segments and secret-looking
    parameters redacted."""
    text = CODEC_UI_PATH.sub("/codec/ui/***", text)
    text = SHARE_SIGNATURE.sub(r"\1***", text)
    text = hide_in_urls(text)
    text = PATH_QUERY.sub(lambda m: f"{m['path']}?{REDACTED}", text)
    return SECRET_PARAMS.sub(lambda m: f"{m['name']}={REDACTED}", text)


def redact_values(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(item) for item in value]
    return value


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if type(value).__name__ == "URL":  # httpx.URL and friends: log text is their str()
        return redact(str(value))
    return value


def install_redaction() -> None:
    """Redact every log record made from now on in this process (idempotent)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts_secrets", False):
        return

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return record

    redacting.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)


def quiet_logging() -> None:
    """A one-shot command's logging: none on the terminal. The command says what happened in
    its own line; a service's log line (a gRPC error's text, unredacted) was printed raw by
    Python's last resort when no logging was set up."""
    root = logging.getLogger()
    if not any(isinstance(handler, logging.NullHandler) for handler in root.handlers):
        root.addHandler(logging.NullHandler())


def setup_logging(level: int = logging.INFO) -> None:
    """Every process's logging: redacted, to stderr (stdout belongs to MCP over stdio and to
    command output)."""
    install_redaction()  # no tokens or query strings in any log line
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # The MCP SDK's stateless endpoint logs "Terminating session: None" at every request, and
    # its session manager's start once per endpoint: an API's log was mostly these.
    for noisy in ("mcp.server.streamable_http", "mcp.server.streamable_http_manager"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
