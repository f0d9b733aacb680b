"""Browser-facing protections: security headers on every response, cross-site form posts refused.

The pages load only their own files (/static/app.css, /static/app.js; /docs its bundle) and
have no inline script or style, so the policy allows ``'self'`` alone. A page that needs an
inline script sets its own Content-Security-Policy (the middleware keeps it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from pydantic import SecretStr
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Reports may show images from the web; never scripts, frames or plugins.
        "img-src 'self' data: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HTML_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    # Same-origin requests keep the Referer the cross-site check reads; other sites get none
    # (share links carry their token in the path).
    "referrer-policy": "same-origin",
}
ALL_HEADERS = {"x-content-type-options": "nosniff"}


# Pure ASGI (not BaseHTTPMiddleware) so the event stream and MCP responses stream as before.
class SecurityHeaders:
    """ASGI middleware: CSP, frame and referrer policy on HTML; nosniff on everything."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                for name, value in (ALL_HEADERS | HTML_HEADERS if html else ALL_HEADERS).items():
                    headers.setdefault(name, value)  # a page's own policy is kept
            await send(message)

        await self.app(scope, receive, send_with_headers)


# An MCP client that meets /mcp's 401 looks for an OAuth authorization server, finds none, and
# registers itself at /register (RFC 7591's default), which is the sign-up form: it read
# "form post refused: it carries neither Origin nor Referer".
NO_OAUTH = (
    "ambient-ops registers no OAuth clients: give this MCP client your API token as the header "
    "'Authorization: Bearer <token>' (the token registering gave you; `ambient dev` prints the "
    "dev user's)"
)


class ClientRegistrationRefused:
    """A JSON POST to /register, an OAuth client registering itself, gets RFC 7591's error
    saying to send the API token; the sign-up form's posts go on to the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") == "/register"
            and Headers(scope=scope).get("content-type", "").partition(";")[0].strip().lower()
            == "application/json"
        ):
            refusal = {"error": "invalid_client_metadata", "error_description": NO_OAUTH}
            answer = JSONResponse(refusal, 400, headers={"Cache-Control": "no-store"})
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def policy_with_inline_scripts(html: str) -> str:
    """The policy, also allowing exactly the inline scripts of ``html`` (by their hash)."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    ]
    allowed = " ".join(["script-src 'self'", *hashes])
    return CONTENT_SECURITY_POLICY.replace("script-src 'self'", allowed)


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def refuse_cross_site_writes(request: Request) -> None:
    """Cookie-signed writes must come from our own pages: Origin, else Referer, must match."""
    # Browsers send Origin on every form post and fetch (Referer when an old one does not): a
    # post with neither comes from no page of ours. ``Origin: null`` (sandboxed frames, data:
    # URLs) is foreign.
    if request.method not in UNSAFE_METHODS:
        return
    # Our own address: the Host the browser asked for, or AMBIENT_PUBLIC_URL behind a proxy.
    public_url = request.app.state.settings.public_url
    ours = {request.headers.get("host", ""), urlsplit(public_url).netloc if public_url else ""}
    ours.discard("")
    source = request.headers.get("origin", request.headers.get("referer"))
    if source is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "form post refused: it carries neither Origin nor Referer"
        )
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or parts.netloc not in ours:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site form post refused")


def is_one_of(token: str | None, secrets: Iterable[SecretStr | None]) -> bool:
    """Whether ``token`` is one of the configured ``secrets`` (unset ones match nothing)."""
    if not token:
        return False
    # As bytes: compare_digest refuses str with non-ASCII (a pasted token's "。").
    return any(
        hmac.compare_digest(token.encode(), secret.get_secret_value().encode())
        for secret in secrets
        if secret is not None
    )
