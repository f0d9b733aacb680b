"""The small server-rendered web page: sign in, tasks, live events, inbox, settings.

No front-end build step: Jinja2 templates, one stylesheet and one script served from the
package. The page signs in with the user's API token, kept in an HttpOnly, SameSite=Strict
cookie; forms post back here and every action goes through the same services the API uses,
so the same checks apply. Here: what every page's route shares (its router, user, words, page,
notices) and the front page; signing in and registering in api.routers.signin_pages, a
refusal in a page's words in api.routers.page_words.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from ambient.domain import field_errors as fields
from ambient.domain.users import Language
from ambient.status import (
    DATABASE_DOWN,
    TEMPORAL_DOWN,
    TEMPORAL_NOT_SET_UP,
    database_down,
    system_status,
    temporal_down,
    temporal_not_set_up,
)
from ambient.storage.models import User
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from api.deps import SessionDep, StateDep, get_state
from api.errors import out_of_range
from api.i18n import Words, from_accept_language, templates
from api.routers.page_words import in_words
from api.security import refuse_cross_site_writes


# A browser shows the API's JSON 503 after a form post or a link: a page says it instead.
class PageRoute(APIRoute):
    """A page's route: Temporal or the database down is said on a page in the user's language."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                if isinstance(exc, RequestValidationError) or out_of_range(exc):
                    return await cannot_take(request, exc)
                if temporal_down(exc):
                    user, problem = await _user_of(request), TEMPORAL_DOWN
                elif temporal_not_set_up(exc):
                    user, problem = await _user_of(request), TEMPORAL_NOT_SET_UP
                elif database_down(exc):
                    user, problem = None, DATABASE_DOWN  # who signed in is in the database
                else:
                    raise
            return render(
                request,
                "unavailable.html",
                {"user": user, "problem": Words(language_of(request, user))(problem)},
                status.HTTP_503_SERVICE_UNAVAILABLE,
            )

        return handle


# The API's JSON 422 is no answer to a browser.
async def cannot_take(request: Request, exc: Exception) -> Response:
    """A link or form the page cannot take (edited by hand), said on a page in its language."""
    user = await _user_of(request)
    _ = Words(language_of(request, user))
    if isinstance(exc, RequestValidationError):
        said = "; ".join(
            f"{'.'.join(map(str, error['loc'][1:]))}: {in_words(fields.refusal(error), _)}"
            for error in exc.errors()
        )
    else:
        said = _("a number is out of range")
    problem = _("This link or form holds a value the page cannot take: %(errors)s", errors=said)
    return render(
        request,
        "unavailable.html",
        {"user": user, "heading": _("Cannot take this"), "problem": problem},
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def page_router() -> APIRouter:
    """A router of PageRoutes that checks every write for a cross-site origin."""
    # On the router, so no new form can miss the check: the second lock beside SameSite=Strict.
    return APIRouter(
        include_in_schema=False,
        dependencies=[Depends(refuse_cross_site_writes), Depends(_notice_key)],
        route_class=PageRoute,
    )


# The key that signs the notices ``back`` leaves in a redirect (and ``notice`` checks), and
# makes a registration form's token, for this request's app; unset outside a page's route, so
# nothing signs or checks with no key.
NOTICE_KEY: ContextVar[bytes] = ContextVar("notice_key")


async def _notice_key(request: Request) -> None:
    NOTICE_KEY.set(request.app.state.settings.secret_key.get_secret_value().encode())


def keyed(purpose: str, *parts: str) -> str:
    """The server key's SHA-256 HMAC (hex) of ``purpose`` and ``parts``, NUL-separated: what a
    page signs (a notice) or derives (a form's token) for one purpose, no other's."""
    said = b"\0".join(part.encode() for part in (purpose, *parts))
    return hmac.new(NOTICE_KEY.get(), said, hashlib.sha256).hexdigest()


def _signed(message: str) -> str:
    return keyed("notice", message)[:32]


router = page_router()
HERE = Path(__file__).resolve().parent.parent
STATIC = {"app.css": "text/css", "app.js": "text/javascript", "share.css": "text/css"}
COOKIE = "ambient_token"


async def page_user(request: Request, session: SessionDep) -> User | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    user = await UserRepository(session).by_token(token)
    # Its read transaction ends here, as the API's (api/deps.py): held, its pooled connection
    # waited through the page's Temporal round trips, and a few pages at once used the pool.
    await session.commit()
    return user


MaybeUser = Annotated[User | None, Depends(page_user)]
# A form's field as the page posts it: text, which the service it goes to checks.
FormText = Annotated[str, Form()]
# The id a detail page's link names (?id=), which the service it goes to looks up.
PageId = Annotated[str, Query(max_length=255)]


async def _user_of(request: Request) -> User | None:
    """The page's user, read in a session of its own (outside the route's dependencies)."""
    async with get_state(request).db.session() as session:
        return await page_user(request, session)


def language_of(request: Request, user: Any) -> Language:
    """The language of a page: the user's, else the browser's, else the server's default."""
    chosen = getattr(user, "language", None)
    if chosen in ("zh", "en"):
        return Language(chosen)
    asked = from_accept_language(request.headers.get("accept-language"))
    return asked or get_state(request).settings.default_language


async def page_words(request: Request, user: MaybeUser) -> Words:
    """What the routers put on a page (flash messages, errors), in the page's language."""
    return Words(language_of(request, user))


PageWords = Annotated[Words, Depends(page_words)]


def render(
    request: Request, name: str, context: dict[str, Any], code: int = status.HTTP_200_OK
) -> HTMLResponse:
    # The same language the routers' messages were put in: the user in the context (or the
    # browser's, or the server's default).
    language = language_of(request, context.get("user"))
    page = templates(language).TemplateResponse(request, name, context, status_code=code)
    # Never kept by the browser: after signing out, Back asks again (and gets the sign-in
    # form) instead of showing a signed-in page, or a token shown once, from its cache.
    page.headers["Cache-Control"] = "no-store"
    return page


def notice(request: Request) -> str | None:
    """The notice the last action left (``?msg=``), if ``back`` signed it (``sig``)."""
    # Unsigned, a link from elsewhere (a mail, another site) could put any words on a signed-in
    # page, such as "send your token to …".
    message, signature = request.query_params.get("msg"), request.query_params.get("sig", "")
    if message is None or not hmac.compare_digest(signature.encode(), _signed(message).encode()):
        return None
    return message


@dataclass
class UserPage:
    """What every route of a signed-in user's page works with: the request, the app's state
    and the user; and how it shows the page."""

    request: Request
    state: AppState
    me: User

    def show(self, name: str, /, refused: str | None = None, **context: Any) -> HTMLResponse:
        """The page, with the notice the last action left (``notice``); or, showing a refused
        form again, what is wrong with it (``refused``, a 422)."""
        code = status.HTTP_200_OK if refused is None else status.HTTP_422_UNPROCESSABLE_CONTENT
        shown = {"user": self.me, **context, "msg": refused or notice(self.request)}
        return render(self.request, name, shown, code)


async def user_page(request: Request, state: StateDep, user: MaybeUser) -> UserPage:
    """The signed-in user's page; anyone not signed in is sent to the sign-in form."""
    if user is None:
        # Browsers follow this to the sign-in form.
        raise HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": "/signin"})
    return UserPage(request, state, user)


Page = Annotated[UserPage, Depends(user_page)]


# A message said back through the redirect's Location header: a value a hand-edited form
# posted (20,000 characters) came back in it whole, past what a reverse proxy takes in a
# response header (nginx: 4-8 KB), and the person got the proxy's 502. Bounded as it is sent,
# percent-encoded: 400 Chinese characters, 1,200 of ASCII.
MESSAGE_LINK = 3_600
# Where a message may be cut between its sentences or clauses.
SENTENCE_END = re.compile(r"(?<=[.;!?])\s+|(?<=[。；！？])")
CUT = " … "


def fitted(message: str) -> str:
    """``message`` as a link may carry it: whole, else its beginning and its end (what a
    refusal says to do) with " … " where its middle was left out, cut between sentences where
    whole ones fit."""
    if len(message) <= MESSAGE_LINK // 12:  # fits, whatever its characters (at most 12 bytes)
        return message
    if len(message) > 2 * MESSAGE_LINK:
        # Neither end kept can hold more characters than the link's bytes: the middle of a
        # value a hand-edited form posted (megabytes) is not measured character by character.
        message = message[:MESSAGE_LINK] + message[-MESSAGE_LINK:]
    sizes = list(accumulate(map(_link_size, message), initial=0))
    if sizes[-1] <= MESSAGE_LINK:
        return message
    room = MESSAGE_LINK - sum(map(_link_size, CUT))
    ends = [m.end() for m in SENTENCE_END.finditer(message) if m.end() < len(message)]
    # The last sentence, if it takes at most half the room; else the end's last characters.
    last = ends[-1] if ends else len(message)
    if not ends or sizes[-1] - sizes[last] > room // 2:
        last = bisect_left(sizes, sizes[-1] - room // 4)
    room -= sizes[-1] - sizes[last]
    head = bisect_right(sizes, room) - 1
    whole = [end for end in ends if end <= head]
    if whole and whole[-1] >= head // 2:  # whole sentences, unless that leaves out too much
        head = whole[-1]
    return f"{message[:head].rstrip()}{CUT}{message[last:].lstrip()}"


def _link_size(character: str) -> int:
    """The bytes ``character`` takes in the link (percent-encoded UTF-8, as ``back`` sends it)."""
    return len(quote(character))


def back(path: str, message: str | None = None) -> RedirectResponse:
    joiner = "&" if "?" in path else "?"
    if message is not None:
        message = fitted(message)
    # Signed before the message, which stays last in the link as it always was.
    signature = None if message is None else _signed(message)
    target = path if message is None else f"{path}{joiner}sig={signature}&msg={quote(message)}"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    if name not in STATIC:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name])


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, state: StateDep, user: MaybeUser) -> Response:
    if user is not None:
        return back("/app")
    report = await system_status(state.settings, state.temporal, state.db)
    return render(
        request,
        "index.html",
        {
            "status": report.public(),
            "open_registration": state.settings.open_registration,
        },
    )
