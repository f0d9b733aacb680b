"""Text to speech (TTS TextToVoice): a briefing spoken as MP3."""

from __future__ import annotations

import base64
import re
import uuid

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentRequestError

TTS_CHUNK = 150  # characters per TextToVoice call
TTS_VOICE = 101001  # the TextToVoice voice every briefing is spoken in


# Where a segment may end, best first: a sentence's end, then a clause's; past both, a cut.
# A Latin full stop, comma or colon before a digit is inside a number or a time (95.5, 12,345,
# 9:45), not a pause.
SENTENCE_ENDS = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)(?!\d)")
CLAUSE_ENDS = re.compile(r"(?<=[，、：…\s])|(?<=[,:])(?!\d)")


def tts_segments(text: str) -> list[str]:
    """Segments of at most ``TTS_CHUNK`` characters, each ended where speech pauses.

    Sentences are packed together; a sentence too long for one is cut at its clauses (，、：),
    and a clause too long at the limit, never inside a number or a Latin word. A segment with
    nothing to speak (punctuation alone) is left out: TextToVoice refuses it (InvalidText).
    """
    units: list[str] = []
    for sentence in SENTENCE_ENDS.split(text):
        if len(sentence) <= TTS_CHUNK:
            units.append(sentence)
            continue
        for clause in CLAUSE_ENDS.split(sentence):
            units += _cut(clause)
    segments: list[str] = []
    current = ""
    for unit in units:
        if len(current) + len(unit) > TTS_CHUNK:
            segments.append(current)
            current = ""
        current += unit
    return [s.strip() for s in [*segments, current] if re.search(r"\w", s)]


def _cut(clause: str) -> list[str]:
    """A clause with no pause in it, cut at the limit but not inside a number or Latin word."""
    cuts: list[str] = []
    while len(clause) > TTS_CHUNK:
        at = TTS_CHUNK
        while at > TTS_CHUNK // 2 and _word(clause[at - 1]) and _word(clause[at]):
            at -= 1
        if at == TTS_CHUNK // 2:  # one word longer than half a segment: cut it after all
            at = TTS_CHUNK
        cuts.append(clause[:at])
        clause = clause[at:]
    return [*cuts, clause]


def _word(char: str) -> bool:
    return char.isascii() and char.isalnum()


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
