"""The voice device: a greeting in, the text to speak (and audio, when TTS is set up) out.

A device authenticates with a device token (AMBIENT_VOICE_DEVICE_TOKENS, sent as
`X-Device-Token`) and names the speaker by user id or voiceprint id; a user's own bearer
token works too (then the speaker is that user unless an admin names another).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from ambient.briefing.models import GreetResult
from ambient.storage.repositories import UserRepository
from api.deps import OptionalUser, SessionDep, StateDep
from api.errors import unauthorized, unprocessable
from api.security import is_one_of

router = APIRouter(prefix="/voice", tags=["voice"])


class GreetingIn(BaseModel):
    user_id: str | None = Field(default=None, max_length=63, description="who greeted")
    voiceprint_id: str | None = Field(
        default=None, max_length=128, description="or: the speaker's voiceprint id"
    )
    request_id: str | None = Field(
        default=None, max_length=128, description="retry-safe id: the same id gets the same answer"
    )
    audio: bool = Field(default=True, description="include TTS audio when Tencent TTS is set up")


@router.post("/greeting")
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
        # A device names its speaker; a signed-in user greets as themselves (admins: anyone).
        caller=None if device or caller is None else caller.name,
    )
