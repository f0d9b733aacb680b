"""The local model's chat template: what we serve instead of the GGUF's own, and why.

The GGUF's chat template renders past tool calls as ``<tool_call>`` tags, but the Coder model
writes ```` ```json ```` fences, and llama.cpp derives its tool-call parser from the template's
history branch; the template's instruction also shows a call in tags with doubled braces, which
the parser does not read. ``patch_template`` makes both fences; ``PROBE_REQUEST`` and
``HISTORY_REQUEST`` are what ``ambient llm install`` renders with the real server to prove
that nothing else changed (``ambient/local_llm.py``).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import httpx


class LocalLLMError(Exception):
    """The local model cannot be installed or served; the message says why and what to do."""


# How the GGUF template renders a past tool call, and what the model itself writes.
TAG_OPEN = '\'\\n<tool_call>\\n{"name": "\''
TAG_CLOSE = "'}\\n</tool_call>'"
FENCE_OPEN = '\'\\n```json\\n{"name": "\''
FENCE_CLOSE = "'}\\n```'"
# How the GGUF template tells the model to write a call (its source text, escapes as written),
# and the fence the parser derived from the history reads; rendered (escapes resolved), as the
# model sees them.
INSTRUCTION_TAGS = (
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}}\\n</tool_call>'
)
INSTRUCTION_FENCE = (
    "in a ```json code block:\\n```json\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n```'
)
RENDERED_TAGS = INSTRUCTION_TAGS.replace("\\n", "\n").replace('\\"', '"')
RENDERED_FENCE = INSTRUCTION_FENCE.replace("\\n", "\n").replace('\\"', '"')


def gguf_metadata_string(path: Path, key: str) -> str | None:
    """One string value of a GGUF file's metadata (format v2/v3), or None."""
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise LocalLLMError(f"{path} is not a GGUF file")
        (version,) = struct.unpack("<I", f.read(4))
        if version < 2:
            raise LocalLLMError(f"{path}: GGUF version {version} is not supported")
        _tensors, count = struct.unpack("<QQ", f.read(16))

        def text() -> str:
            (length,) = struct.unpack("<Q", f.read(8))
            return f.read(length).decode("utf-8")

        def skip(kind: int) -> None:
            if kind == 8:
                (length,) = struct.unpack("<Q", f.read(8))
                f.seek(length, 1)
            elif kind == 9:
                item, length = struct.unpack("<IQ", f.read(12))
                if item in sizes:
                    f.seek(sizes[item] * length, 1)
                else:
                    for _ in range(length):
                        skip(item)
            else:
                f.seek(sizes[kind], 1)

        for _ in range(count):
            name = text()
            (kind,) = struct.unpack("<I", f.read(4))
            if name == key and kind == 8:
                return text()
            skip(kind)
    return None


def patch_template(template: str) -> str:
    """Calls in ```json fences (what the Coder model writes and the parser will read), both in
    the instruction to the model and in past calls of the history, not in tags."""
    if template.count(TAG_OPEN) != 1 or template.count(TAG_CLOSE) != 1:
        raise LocalLLMError(
            "the model's chat template does not render past tool calls as expected "
            "(one <tool_call> block in its history branch): cannot serve tool calls"
        )
    if template.count(INSTRUCTION_TAGS) != 1:
        raise LocalLLMError(
            "the model's chat template does not tell the model to call tools as expected "
            "(one <tool_call> example after the tool list): cannot serve tool calls"
        )
    return (
        template.replace(TAG_OPEN, FENCE_OPEN)
        .replace(TAG_CLOSE, FENCE_CLOSE)
        .replace(INSTRUCTION_TAGS, INSTRUCTION_FENCE)
    )


# What the template check renders: one user turn with a tool offered.
PROBE_REQUEST: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Pause the bitcoin watch."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "pause_task",
                "description": "Pause a task.",
                "parameters": {
                    "type": "object",
                    "properties": {"task_id": {"type": "string"}},
                    "required": ["task_id"],
                },
            },
        }
    ],
}


# The same turn answered by a call, then the next question: the history the fix changes.
HISTORY_REQUEST: dict[str, Any] = {
    **PROBE_REQUEST,
    "messages": [
        *PROBE_REQUEST["messages"],
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "pause_task", "arguments": '{"task_id": "btc"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "paused"},
        {"role": "user", "content": "Thanks."},
    ],
}
HISTORY_FENCE = '```json\n{"name": "pause_task"'


def apply_template(url: str, request: dict[str, Any]) -> str:
    response = httpx.post(f"{url}/apply-template", json=request, timeout=60, trust_env=False)
    response.raise_for_status()
    return str(response.json()["prompt"])
