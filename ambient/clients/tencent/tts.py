"""Text to speech (TTS TextToVoice): a briefing spoken as MP3."""

from __future__ import annotations

import base64
import re
import uuid

from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentRequestError

TTS_CHUNK = 150  # characters per TextToVoice call: its reference's 150 Chinese characters
# An English text's: its reference's 500 letters (a half-width punctuation mark one of them).
TTS_CHUNK_EN = 500
TTS_VOICE = 101001  # the TextToVoice voice every briefing is spoken in
# TextToVoice's PrimaryLanguage: 1 Chinese (its default), 2 English. A briefing in English
# spoken with the default read its numbers and times by Chinese rules.
PRIMARY_LANGUAGE = {False: 1, True: 2}


# Where a segment may end, best first: a sentence's end, then a clause's; past both, a cut.
# A Latin full stop, comma or colon before a digit is inside a number or a time (95.5, 12,345,
# 9:45), not a pause.
SENTENCE_ENDS = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.)(?!\d)")
CLAUSE_ENDS = re.compile(r"(?<=[，、：…\s])|(?<=[,:])(?!\d)")


def tts_segments(text: str, limit: int = TTS_CHUNK) -> list[str]:
    """Segments of at most ``limit`` characters, each ended where speech pauses.

    Sentences are packed together; a sentence too long for one is cut at its clauses (，、：),
    and a clause too long at the limit, never inside a number or a Latin word. A segment with
    nothing to speak (punctuation alone) is left out: TextToVoice refuses it (InvalidText).
    """
    units: list[str] = []
    for sentence in SENTENCE_ENDS.split(text):
        if len(sentence) <= limit:
            units.append(sentence)
            continue
        for clause in CLAUSE_ENDS.split(sentence):
            units += _cut(clause, limit)
    segments: list[str] = []
    current = ""
    for unit in units:
        if len(current) + len(unit) > limit:
            segments.append(current)
            current = ""
        current += unit
    return [s.strip() for s in [*segments, current] if re.search(r"\w", s)]


def _cut(clause: str, limit: int) -> list[str]:
    """A clause with no pause in it, cut at the limit but not inside a number or Latin word."""
    cuts: list[str] = []
    while len(clause) > limit:
        at = limit
        while at > limit // 2 and _word(clause[at - 1]) and _word(clause[at]):
            at -= 1
        if at == limit // 2:  # one word longer than half a segment: cut it after all
            at = limit
        cuts.append(clause[:at])
        clause = clause[at:]
    return [*cuts, clause]


def _word(char: str) -> bool:
    return char.isascii() and char.isalnum()


async def text_to_voice(tc: TencentCloud, text: str, *, english: bool = False) -> bytes:
    """MP3 audio of ``text`` (``english``: read as English); long text is spoken in segments
    and the MP3 frames joined."""
    if not text.strip():
        raise TencentRequestError("InvalidParameter", "nothing to speak")
    audio = b""
    session = uuid.uuid4().hex
    # 500 of English letters; a text with any other character (a Chinese name, a "–") is held
    # to the Chinese count, the reference saying none for a mixed text.
    limit = TTS_CHUNK_EN if english and text.isascii() else TTS_CHUNK
    for index, segment in enumerate(tts_segments(text, limit)):
        answer = await tc.call(
            "tts",
            "TextToVoice",
            {
                "Text": segment,
                "SessionId": f"{session}-{index}",
                "VoiceType": TTS_VOICE,
                "Codec": "mp3",
                "ModelType": 1,
                "PrimaryLanguage": PRIMARY_LANGUAGE[english],
            },
        )
        audio += base64.b64decode(answer.get("Audio", ""))
    return audio
