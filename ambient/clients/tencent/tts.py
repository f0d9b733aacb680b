"""Text to speech (TTS TextToVoice): a briefing spoken as MP3."""

from __future__ import annotations

import base64
import re
import uuid

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentRequestError

TTS_CHUNK = 150  # characters per TextToVoice call
TTS_VOICE = 101001  # the TextToVoice voice every briefing is spoken in


def tts_segments(text: str) -> list[str]:
    """Cut at sentence ends (。！？.!?；;) so no segment passes ``TTS_CHUNK`` characters."""
    sentences = [s for s in re.split(r"(?<=[。！？!?；;.\n])", text) if s.strip()]
    segments: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > TTS_CHUNK:
            if current:
                segments.append(current)
                current = ""
            segments.append(sentence[:TTS_CHUNK])
            sentence = sentence[TTS_CHUNK:]
        if len(current) + len(sentence) > TTS_CHUNK:
            segments.append(current)
            current = ""
        current += sentence
    return [s.strip() for s in [*segments, current] if s.strip()]


async def text_to_voice(tc: TencentCloud, text: str) -> bytes:
    """MP3 audio of ``text``; long text is spoken in segments and the MP3 frames joined."""
    if not text.strip():
        raise TencentRequestError("InvalidParameter", "nothing to speak")
    audio = b""
    session = uuid.uuid4().hex
    for index, segment in enumerate(tts_segments(text)):
        answer = await tc.call(
            "tts",
            "TextToVoice",
            {
                "Text": segment,
                "SessionId": f"{session}-{index}",
                "VoiceType": TTS_VOICE,
                "Codec": "mp3",
                "ModelType": 1,
            },
        )
        audio += base64.b64decode(answer.get("Audio", ""))
    return audio
