"""Briefings: the daily briefing task, the stored briefings, sending, sharing, log analysis;
and the voice device's greeting (POST /voice/greeting): the text to speak (and audio, when TTS
is set up) out.

A device authenticates with a device token (AMBIENT_VOICE_DEVICE_TOKENS, sent as
`X-Device-Token`) and names the speaker by user id or voiceprint id; a user's own bearer
token works too (then the speaker is that user unless an admin names another).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import Field

from ambient.briefing.config import BriefingConfig
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    BriefingRefusedError,
    BriefingReplacedError,
    BriefingUnavailableError,
    InvalidBriefingError,
)
from ambient.briefing.greeting import DEVICE_LISTENS, GREET_ROUND_TRIP, Greeting
from ambient.briefing.greeting_answers import GreetResult
from ambient.briefing.models import (
    MAX_REQUEST_ID,
    BriefingListItem,
    BriefingRef,
    BriefingStatus,
    BriefingView,
    LogAnalysis,
    PreparedBriefing,
)
from ambient.briefing.sent import BriefingSent
from ambient.domain.configs import UserConfig
from ambient.domain.numbers import WHOLE_NUMBER
from ambient.domain.times import IsoTime
from ambient.sharing import ReportLink
from ambient.storage.users import UserRepository
from api.deps import CurrentUser, OptionalUser, SessionDep, StateDep, created_or_found
from api.errors import answers, refusal, unauthorized, unprocessable
from api.routers.tasks import FOUND
from api.security import is_one_of

STATUSES = {
    BriefingNotFoundError: 404,
    BriefingRefusedError: 403,
    BriefingReplacedError: 409,
    BriefingUnavailableError: 503,
}

REFUSED = answers(*STATUSES.values(), 502)
router = APIRouter(prefix="/briefings", tags=["briefings"], responses=REFUSED)
voice_router = APIRouter(prefix="/voice", tags=["voice"], responses=REFUSED)


class SendIn(UserConfig):
    date: str | None = Field(default=None, description="YYYY-MM-DD; the latest when omitted")
    request_id: str | None = Field(default=None, min_length=1, max_length=MAX_REQUEST_ID)


class RegenerateIn(UserConfig):
    request_id: str | None = Field(default=None, min_length=1, max_length=MAX_REQUEST_ID)


class AnalyzeIn(UserConfig):
    log_source: dict[str, Any]
    start: IsoTime
    end: IsoTime


# The refusals no field is to blame for (a replaced run changed under the request; a
# preparation that failed, to be tried again as with the database down); any other
# BriefingError is a 503 (Temporal down) or a 502.


def http_error(exc: BriefingError, where: str = "body") -> Exception:
    if isinstance(exc, InvalidBriefingError):
        # A list item by its index, as FastAPI names one: ["body", "news_urls", 0].
        loc = [int(p) if p.isdigit() else p for p in exc.field.split(".")] if exc.field else []
        return unprocessable((loc, str(exc)), where=where, given=exc.given)
    return refusal(exc, STATUSES)


@router.post("/daily", status_code=status.HTTP_201_CREATED, responses=FOUND)
async def create_daily_briefing(
    config: dict[str, Any], user: CurrentUser, state: StateDep, response: Response
) -> BriefingRef:
    """Set up (or replace) your daily briefing; fields as BriefingConfig."""
    return created_or_found(await state.briefings.create(user.name, config), response)


@router.get("/daily")
async def daily_status(user: CurrentUser, state: StateDep) -> BriefingStatus:
    return await state.briefings.status(user.name)


@router.delete("/daily")
async def delete_daily_briefing(user: CurrentUser, state: StateDep) -> BriefingRef:
    return await state.briefings.delete(user.name)


@router.post("/daily/{action}")
async def steer_daily_briefing(
    action: Literal["pause", "resume"], user: CurrentUser, state: StateDep
) -> BriefingStatus:
    """Pause (no preparation, no push) or resume your daily briefing."""
    steer = state.briefings.pause if action == "pause" else state.briefings.resume
    return await steer(user.name)


@router.get("/config-schema")
async def config_schema() -> dict[str, Any]:
    return BriefingConfig.model_json_schema()


@router.get("")
async def list_briefings(
    user: CurrentUser,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=366), WHOLE_NUMBER] = 30,
) -> list[BriefingListItem]:
    return await state.briefings.list_briefings(user.name, limit)


@router.post("/regenerate")
async def regenerate(
    user: CurrentUser, state: StateDep, body: RegenerateIn | None = None
) -> PreparedBriefing:
    return await state.briefings.regenerate(user.name, body.request_id if body else None)


@router.post("/send")
async def send(body: SendIn, user: CurrentUser, state: StateDep) -> BriefingSent:
    """Push a briefing through your channels now."""
    return await state.briefings.send(user.name, body.date, body.request_id)


@router.post("/analyze")
async def analyze(body: AnalyzeIn, user: CurrentUser, state: StateDep) -> LogAnalysis:
    """The reduction report of any log source and range."""
    return await state.briefings.analyze_logs(user.name, body.log_source, body.start, body.end)


@router.get("/{date}")
async def get_briefing(date: str, user: CurrentUser, state: StateDep) -> BriefingView:
    try:
        return await state.briefings.get_briefing(user.name, date)
    except InvalidBriefingError as exc:  # the date is the path's, not a body's
        raise http_error(exc, where="path") from None


@router.post("/{date}/share", status_code=status.HTTP_201_CREATED)
async def share(date: str, user: CurrentUser, state: StateDep) -> ReportLink:
    """A signed, expiring link to the briefing page (the full report)."""
    try:
        return await state.briefings.share(user.name, date)
    except InvalidBriefingError as exc:
        raise http_error(exc, where="path") from None


class GreetingIn(UserConfig):
    user_id: str | None = Field(default=None, max_length=63, description="who greeted")
    voiceprint_id: str | None = Field(
        default=None, max_length=128, description="or: the speaker's voiceprint id"
    )
    request_id: str | None = Field(
        default=None,
        max_length=MAX_REQUEST_ID,
        description="retry-safe id: the same id gets the same answer",
    )
    audio: bool = Field(default=True, description="include TTS audio when Tencent TTS is set up")
    # A device that stopped listening must not have the day's briefing spent on nobody: the
    # answer (text alone when TTS is slow, "still preparing") comes within this.
    listens_seconds: float = Field(
        default=DEVICE_LISTENS,
        # Less than the answer's way back plus a second leaves the workflow no time to speak.
        ge=GREET_ROUND_TRIP + 1,
        le=Greeting.greet_timeout.total_seconds(),  # the service's own bound
        description="how long the device waits for this answer, in seconds",
    )


@voice_router.post("/greeting")
async def greeting(
    body: GreetingIn,
    state: StateDep,
    session: SessionDep,
    caller: OptionalUser,
    x_device_token: Annotated[str | None, Header()] = None,
) -> GreetResult:
    """The wake word was heard: the briefing at the first greeting in the window, else a short
    answer (given at HH:MM / outside the window / still preparing)."""
    device = is_one_of(x_device_token, state.settings.voice_device_tokens.values())
    if caller is None and not device:
        if x_device_token is not None:
            raise unauthorized(
                "this X-Device-Token is not one of AMBIENT_VOICE_DEVICE_TOKENS: send a token "
                "the operator set there, or a user's bearer token"
            )
        raise unauthorized("send a device token (X-Device-Token) or a user's bearer token")
    if body.voiceprint_id is not None:
        speaker = await UserRepository(session).by_voiceprint(body.voiceprint_id)
        # Whose voice an id is, or whether it is anyone's, only a device or an admin is told:
        # a member hears the same for every id but their own.
        if not device and caller is not None and not caller.is_admin and speaker != caller:
            raise BriefingRefusedError("greeting by a voiceprint id not yours needs the admin role")
        if speaker is None:
            raise unprocessable((["voiceprint_id"], "no user has this voiceprint id"))
        name = speaker.name
    elif body.user_id is not None:
        name = body.user_id
    elif caller is not None:
        name = caller.name
    else:
        raise unprocessable(
            (["user_id"], "a device must name the speaker: user_id or voiceprint_id")
        )
    return await state.briefings.greet(
        name,
        via="voice",
        request_id=body.request_id,
        audio=body.audio,
        within=body.listens_seconds,
        # A device names its speaker; a signed-in user greets as themselves (admins: anyone).
        caller=None if device or caller is None else caller.name,
    )
