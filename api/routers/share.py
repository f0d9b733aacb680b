"""Share links: create, list and revoke (logged in); open (anyone with the link, until expiry)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StringConstraints, field_validator

from ambient import history
from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.users import Language, UserName
from ambient.refusals import N_
from ambient.sharing import (
    PENDING,
    ExpiredShareLinkError,
    RevokedShareLinkError,
    ShareLinkError,
    ShareLinkLimitError,
    ShareLinkRepository,
    create_link,
)
from ambient.storage.models import MAX_ID
from api.deps import CurrentUser, SessionDep, StateDep
from api.errors import answers
from api.i18n import Words
from api.routers.events import BeforeId, Of
from api.routers.pages import language_of, page_router

router = APIRouter(prefix="/share", tags=["share"], responses=answers(404, 429))


class ShareCreate(UserConfig):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    # Linear in markdown-it, but up to ~30 us a character (docs/benchmarks.md "Share links").
    body: str = Field(min_length=1, max_length=100_000, description="markdown")

    @field_validator("body")
    @classmethod
    def _something(cls, body: str) -> str:
        # Kept as written (markdown's indents are meaning), but not all blank.
        if not body.strip():
            raise ValueError("blank: the report has no text")
        return body

    kind: Literal["briefing", "remediation", "report"] = "report"
    days: Annotated[int | None, WHOLE_NUMBER] = Field(
        default=None, ge=1, le=365, description="default 7"
    )


class ShareCreated(BaseModel):
    id: int
    url: str
    token: str
    expires_at: datetime


def _repo(session: SessionDep, state: StateDep) -> ShareLinkRepository:
    return ShareLinkRepository(session, state.settings.secret_key.get_secret_value())


def limit_error(exc: ShareLinkLimitError) -> HTTPException:
    """The hour's links made (from any route that makes one): 429, and when to try again."""
    headers = {"Retry-After": str(exc.retry_after)}
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers=headers)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_share_link(body: ShareCreate, user: CurrentUser, state: StateDep) -> ShareCreated:
    """A signed link to a rendered report, valid for ``days`` (default 7); refused (429) past
    ``AMBIENT_SHARE_LINKS_PER_HOUR`` new links in the last hour."""
    settings = state.settings
    row, token = await create_link(
        state.db, settings, user.name, body.kind, body.title, body.body, days=body.days
    )
    url = f"{settings.public_base_url}/share/{token}"
    return ShareCreated(id=row.id, url=url, token=token, expires_at=row.expires_at)


class ShareLinkView(BaseModel):
    id: int
    kind: str
    title: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@router.get("")
async def list_share_links(
    user: CurrentUser,
    session: SessionDep,
    state: StateDep,
    of: Annotated[UserName | None, Of("links")] = None,
    limit: Annotated[int, Query(ge=1, le=500), WHOLE_NUMBER] = 100,
    before_id: BeforeId = None,
) -> list[ShareLinkView]:
    """Your share links, newest first, revoked and expired ones too (never their tokens):
    what you gave out, and what someone holding your token may have made (after rotating a
    token that leaked, revoke those: DELETE /share/{id})."""
    name = await history.whose(session, user.name, user.is_admin, of)
    rows = await _repo(session, state).links(name, limit=limit, before_id=before_id)
    return [ShareLinkView.model_validate(row, from_attributes=True) for row in rows]


@router.delete("/{link_id:int}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_share_link(
    link_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    user: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> None:
    """Revoke one of your links by its id (an admin: anyone's)."""
    if not await _repo(session, state).revoke(user.name, link_id, admin=user.is_admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no share link {link_id} of yours")
    await session.commit()


@router.delete("/{token}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_share_link_by_token(
    token: Annotated[str, Path(max_length=255, description="the link's last path segment")],
    user: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> None:
    """Revoke one of your links by the link itself (as a briefing email carries it; an
    admin: anyone's)."""
    if not await _repo(session, state).revoke(user.name, token, admin=user.is_admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no share link of yours at that address")
    await session.commit()


# What the reader of a link that no longer opens is told; an unknown or forged one says no more.
GONE = {
    ExpiredShareLinkError: N_("This link has expired: ask whoever shared it for a new one."),
    RevokedShareLinkError: N_("This link was withdrawn by whoever shared it."),
}
NOT_FOUND = N_("No report at this address: check that the whole link was copied.")
# A link opened while its page renders (create_link stores it first): said, not shown empty.
PREPARING = N_("This report is still being prepared: reload in a moment.")
# The kinds of report a link shows, as its footer names them.
KINDS = {"briefing": N_("briefing"), "remediation": N_("remediation"), "report": N_("report")}


# The reader's page: the database down is said on a page in their language, not in JSON.
reader = page_router()


@reader.get("/{token}", response_class=HTMLResponse)
async def open_share_link(
    request: Request, token: str, session: SessionDep, state: StateDep
) -> HTMLResponse:
    # The frame speaks its reader's language, as every anonymous page does (api/i18n.py).
    language = language_of(request, None)
    _ = Words(language)
    try:
        row = await _repo(session, state).open(token)
    except ShareLinkError as exc:
        gone = GONE.get(type(exc))
        said = _(gone or NOT_FOUND)
        code = status.HTTP_410_GONE if gone else status.HTTP_404_NOT_FOUND
        return _page(language, said, f"<h1>{escape(said)}</h1>", code)
    if row.html == PENDING:
        said = _(PREPARING)
        body = f"<h1>{escape(said)}</h1>"
        return _page(language, said, body, status.HTTP_503_SERVICE_UNAVAILABLE, retry_after=2)
    # A report that brings its own title is not given a second one.
    has_title = row.html.lstrip().startswith("<h1")
    heading = "" if has_title else f"<h1>{escape(row.title)}</h1>"
    until = f"{row.expires_at:%Y-%m-%d %H:%M}"
    kind = _(KINDS.get(row.kind, row.kind))
    footer = _("ambient-ops · %(kind)s · valid until %(until)s UTC", kind=kind, until=until)
    body = f"""{heading}{row.html}
<p><small>{escape(footer)}
</small></p>"""
    return _page(language, row.title, body)


router.include_router(reader)


def _page(
    language: Language,
    title: str,
    body: str,
    code: int = status.HTTP_200_OK,
    retry_after: int | None = None,
) -> HTMLResponse:
    page = f"""<!doctype html><html lang="{language.value}"><head><meta charset="utf-8">
<meta name="robots" content="noindex"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/share.css">
</head><body>{body}
</body></html>"""
    headers = {"Cache-Control": "private, no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return HTMLResponse(page, status_code=code, headers=headers)
