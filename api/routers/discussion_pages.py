"""Web pages of discussions: the list, one discussion, and a post (as yourself; a reply that
answers a remediation says its step as every door does). Same service as the API."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Query
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from ambient.discussions import reading
from ambient.discussions.rules import MessageIn
from ambient.discussions.views import (
    DiscussionClosedError,
    DiscussionError,
    DiscussionNotFoundError,
    DiscussionRead,
    InvalidDiscussionError,
)
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.refusals import N_
from ambient.remediation.views import RemediationError, RemediationStateError, answer_said
from ambient.storage.models import MAX_ID
from api.routers.ops_pages import (
    answered_already,
    discussion_problem,
    names_message_id,
    remediation_problem,
)
from api.routers.page_words import in_words, what_went_wrong
from api.routers.pages import FormText, Page, PageWords, UserPage, back, page_router

router = page_router()


# A discussion's status as its pages name it.
DISCUSSION_STATES = (N_("open"), N_("closed"))
# A message its sender did not vouch for, as the page labels it ("real" is not labelled).
MESSAGE_SOURCES = (N_("inferred"), N_("unverifiable"))
# One page of the list at a time, as list_discussions answers (its More link gives the rest).
DISCUSSIONS_PER_PAGE = 50


@router.get("/app/discussions", response_class=HTMLResponse)
async def discussion_list(
    page: Page, offset: Annotated[int, Query(ge=0, le=MAX_ID), WHOLE_NUMBER] = 0
) -> Response:
    return await _discussion_list(page, offset=offset)


async def _discussion_list(
    page: UserPage, typed: dict[str, str] | None = None, offset: int = 0
) -> Response:
    """A page of the list (``offset``: the one its More link gives); after a refused new
    topic, ``typed`` is its form as sent (shown again)."""
    listing = await page.state.discussions.list_discussions(
        page.me.name, limit=DISCUSSIONS_PER_PAGE, offset=offset
    )
    return _discussion_form(page, "discussions.html", typed, listing=listing, offset=offset)


@router.get("/app/discussion", response_class=HTMLResponse)
async def discussion_page(
    page: Page,
    _: PageWords,
    id: str,
    # read_discussion's bound, here (its refusal is the API's English).
    offset: Annotated[int | None, Query(ge=0, le=MAX_ID), WHOLE_NUMBER] = None,
) -> Response:
    try:
        read = await page.state.discussions.read_discussion(page.me.name, id, offset)
    except DiscussionError as exc:
        return back("/app/discussions", discussion_problem(exc, _))
    return _discussion_form(page, "discussion.html", None, read=read, earlier=_earlier(read))


def _earlier(read: DiscussionRead) -> int | None:
    """Where the page before this one starts (None on the first): pages are the API's."""
    # This page's start (a page of long messages holds fewer than PAGE).
    end = read.discussion.messages if read.next_offset is None else read.next_offset
    first = end - len(read.messages)
    return max(0, first - reading.PAGE) if first > 0 else None


def _discussion_form(
    page: UserPage, name: str, typed: dict[str, str] | None, **context: Any
) -> Response:
    # Each showing of a form is one message: a resubmit with its id posts nothing more. A
    # refused post stored nothing: shown again with its id (if it has one), as the person
    # filled it in; a form without one gets a new one.
    typed = {"message_id": f"web-{uuid.uuid4().hex}", **(typed or {})}
    return page.show(name, refused=typed.get("problem"), typed=typed, **context)


@router.post("/app/discussions/post")
async def discussion_post(
    page: Page,
    _: PageWords,
    content: FormText,
    discussion_id: FormText = "",
    topic: FormText = "",
    tags: FormText = "",
    message_id: FormText = "",
) -> Response:
    """Post as yourself: a reply in a discussion, or a message on a topic."""
    here = f"/app/discussion?id={quote(discussion_id)}" if discussion_id else "/app/discussions"
    discussions, me = page.state.discussions, page.me
    try:
        message = MessageIn(
            from_id=me.name,
            content=content,
            # Between commas, "，" and "、" too: the commas a Chinese user types (as keywords).
            tags=[t.strip() for t in re.split("[,，、]", tags) if t.strip()],
            message_id=message_id or None,
        )
        if discussion_id:
            posted = await discussions.reply_message(me.name, discussion_id, message)
        else:
            posted = await discussions.send_message(me.name, topic, message)
    except (DiscussionError, ValueError) as exc:
        problem = discussion_problem(exc, _)
        if isinstance(exc, DiscussionNotFoundError | DiscussionClosedError):
            return back(here, problem)
        typed = {"problem": problem, "content": content, "topic": topic, "tags": tags}
        # A refused post stored nothing: its id is kept for the same message sent again, unless
        # the id is the one refused.
        taken = isinstance(exc, InvalidDiscussionError) and exc.field == "message_id"
        taken = taken or (isinstance(exc, ValidationError) and names_message_id(exc))
        if message_id and not taken:
            typed["message_id"] = message_id
        if not discussion_id:
            return await _discussion_list(page, typed)
        try:
            read = await discussions.read_discussion(me.name, discussion_id, None)
        except DiscussionError as gone:  # deleted since, or never yours (an edited field)
            return back("/app/discussions", discussion_problem(gone, _))
        return _discussion_form(page, "discussion.html", typed, read=read, earlier=_earlier(read))
    note = _("Posted")
    if posted.action is not None:
        why, action = posted.refused, posted.action
        if isinstance(why, RemediationStateError) and posted.already_posted:
            # A double click (its message id sent twice): said as the first submit's answer.
            approve, rid = action["verb"] == "approve", action["remediation_id"]
            first = action["verb"] != "abort" and await answered_already(
                page, rid, None, None, approve
            )
            if first:
                why, action = None, {**action, "rung": first[0], "mode": first[1]}
        if why is None and "rung" in action:  # an answer: its step, as every door says it
            result = in_words(
                answer_said(action["verb"] == "approve", action["rung"], action["mode"]), _
            )
        elif why is None:
            result = _("done")
        elif isinstance(why, RemediationError):
            result = remediation_problem(why, _)
        else:
            result = what_went_wrong(why, _)
        note = _("Posted: %(result)s", result=result)
    return back(f"/app/discussion?id={quote(posted.discussion_id)}", note)
