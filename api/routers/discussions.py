"""Discussions over REST: the same operations as the signing, annotate and bus tools."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from ambient.discussions.rules import MessageIn
from ambient.discussions.views import (
    AnnotationReport,
    AnomalyReport,
    Closed,
    DiscussionClosedError,
    DiscussionError,
    DiscussionList,
    DiscussionNotFoundError,
    DiscussionRead,
    Found,
    InvalidDiscussionError,
    Posted,
    SigningError,
    Stats,
)
from ambient.domain.numbers import DecimalNumber, WholeNumber
from api.deps import CurrentUser, StateDep
from api.errors import answers, refusal, unprocessable

STATUSES = {DiscussionNotFoundError: 404, SigningError: 403, DiscussionClosedError: 409}

router = APIRouter(
    prefix="/discussions", tags=["discussions"], responses=answers(*STATUSES.values(), 502)
)


class NewMessage(MessageIn):
    topic: str


QUERY_FIELDS = {"keyword", "threshold_seconds", "offset"}

# The refusals no field is to blame for; any other DiscussionError is a 502.


def http_error(exc: DiscussionError) -> Exception:
    if isinstance(exc, InvalidDiscussionError):
        # The search's and the anomalies' parameters come in the query, the rest in the body.
        where = "query" if exc.field in QUERY_FIELDS else "body"
        if exc.field == "discussion_id":
            where = "path"
        return unprocessable(([exc.field], str(exc)), where=where)
    return refusal(exc, STATUSES)


@router.get("")
async def list_discussions(
    user: CurrentUser,
    state: StateDep,
    status_: Annotated[Literal["open", "closed"] | None, Query(alias="status")] = None,
    offset: WholeNumber = 0,
) -> DiscussionList:
    return await state.discussions.list_discussions(user.name, status_, offset=offset)


@router.post("", status_code=status.HTTP_201_CREATED)
async def send_message(body: NewMessage, user: CurrentUser, state: StateDep) -> Posted:
    """Post on a topic: joins its open discussion or opens one."""
    return await state.discussions.send_message(user.name, body.topic, body)


@router.get("/search")
async def search(
    keyword: str, user: CurrentUser, state: StateDep, offset: WholeNumber = 0
) -> Found:
    return await state.discussions.search_messages(user.name, keyword, offset)


@router.get("/stats")
async def stats(user: CurrentUser, state: StateDep) -> Stats:
    return await state.discussions.get_stats(user.name)


@router.get("/{discussion_id}")
async def read(
    discussion_id: str, user: CurrentUser, state: StateDep, offset: WholeNumber = 0
) -> DiscussionRead:
    return await state.discussions.read_discussion(user.name, discussion_id, offset)


@router.post("/{discussion_id}/messages", status_code=status.HTTP_201_CREATED)
async def reply(discussion_id: str, body: MessageIn, user: CurrentUser, state: StateDep) -> Posted:
    return await state.discussions.reply_message(user.name, discussion_id, body)


@router.post("/{discussion_id}/close")
async def close(discussion_id: str, user: CurrentUser, state: StateDep) -> Closed:
    return await state.discussions.close_discussion(user.name, discussion_id)


@router.get("/{discussion_id}/anomalies")
async def anomalies(
    discussion_id: str, user: CurrentUser, state: StateDep, threshold_seconds: DecimalNumber = 2.0
) -> AnomalyReport:
    return await state.discussions.detect_anomalies(user.name, discussion_id, threshold_seconds)


@router.post("/{discussion_id}/annotate")
async def annotate(discussion_id: str, user: CurrentUser, state: StateDep) -> AnnotationReport:
    return await state.discussions.annotate_discussion(user.name, discussion_id)
