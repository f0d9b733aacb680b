"""A stand-in for an OpenAI-compatible chat completions endpoint, served on loopback.

The real `openai` client talks to it (``OPENAI_BASE_URL=http://127.0.0.1:PORT/v1``). Answers
are scripted in order (`script(...)`); when the script is empty a ``responder`` decides from
the request, or a fixed default answers. Every request is recorded for assertions.

Scripted answers:
  Content("...")            the assistant message text (valid or invalid JSON, any text)
  Content("...", "length")  the same, cut off at the request's max_tokens
  Content.of(model)         a pydantic model or dict as JSON text
  ToolCalls([(name, args)]) function tool calls
  Failure(status, message)  an HTTP error in OpenAI's error shape
  Raw(body, media_type)     any 200 answer that is no chat completion (a proxy's page, ...)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DATA_BLOCK = re.compile(r"<<<DATA (?P<label>[^>]*)>>>.*?<<<END DATA (?P=label)>>>", re.S)


@dataclass
class Content:
    text: str
    # "length": the answer was cut at the request's max_tokens (what a runaway model gets).
    finish: str = "stop"

    @classmethod
    def of(cls, value: BaseModel | dict[str, Any]) -> Content:
        if isinstance(value, BaseModel):
            return cls(value.model_dump_json())
        return cls(json.dumps(value, ensure_ascii=False))


@dataclass
class ToolCalls:
    calls: list[tuple[str, dict[str, Any]]]
    # "length": cut at the request's max_tokens (the last call's arguments cut short).
    finish: str = "tool_calls"


@dataclass
class Failure:
    status: int
    message: str
    code: str | None = None


@dataclass
class Raw:
    body: str
    media_type: str = "application/json"


Answer = Content | ToolCalls | Failure | Raw


def _unanswered(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's 400 for a history whose tool messages do not answer the calls just before
    them, each call once (a history cut between a call and its answer)."""
    asked: set[str] = set()
    for message in messages:
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in asked:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
            asked.discard(message["tool_call_id"])
            continue
        if asked:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(asked))}"
            )
        asked = {call["id"] for call in message.get("tool_calls") or []}
    return f"tool_call_ids without response messages: {', '.join(sorted(asked))}" if asked else None


def outside_data(text: str) -> str:
    """The part of a message that is not inside a data block: what a naive model would obey."""
    return DATA_BLOCK.sub("", text)


@dataclass
class LLMApi:
    script_queue: list[Answer] = field(default_factory=list)
    responder: Callable[[dict[str, Any]], Answer] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Answer a `json_schema` response format with this error (providers without it).
    refuse_json_schema: bool = False
    # Seconds before each answer (a slow model).
    delay: float = 0.0
    # The model's context, in characters of a request's messages and tools: past it, the 400
    # a local llama-server answers (its context is in tokens; characters stand in for them).
    context_chars: int | None = None
    # When each delayed answer's wait began and ended (time.monotonic, as an event loop's time).
    waits: list[tuple[float, float]] = field(default_factory=list)

    def script(self, *answers: Answer) -> None:
        self.script_queue.extend(answers)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.handle, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        """The model list (what a status probe asks for)."""
        return JSONResponse(
            {"object": "list", "data": [{"id": "standin", "object": "model", "owned_by": "test"}]}
        )

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        began = time.monotonic()
        await asyncio.sleep(self.delay)
        self.waits.append((began, time.monotonic()))
        if request.headers.get("authorization", "") != "Bearer test-llm-key":
            return self._error(Failure(401, "invalid api key", "invalid_api_key"))
        self.requests.append(body)
        response_format = body.get("response_format") or {}
        if self.refuse_json_schema and response_format.get("type") == "json_schema":
            return self._error(Failure(400, "response_format json_schema is unavailable"))
        if (problem := _unanswered(body.get("messages") or [])) is not None:
            return self._error(Failure(400, problem))
        if self.context_chars is not None:
            sent = json.dumps([body.get("messages"), body.get("tools")], ensure_ascii=False)
            if len(sent) > self.context_chars:
                # llama-server's answer (its server.cpp, exceed_context_size_error).
                too_long = "the request exceeds the available context size, try increasing it"
                return self._error(Failure(400, too_long, "exceed_context_size_error"))
        for penalty in ("frequency_penalty", "presence_penalty"):
            # OpenAI's range; a value outside it is refused, not clamped.
            value = body.get(penalty, 0)
            if not isinstance(value, int | float) or not -2 <= value <= 2:
                return self._error(Failure(400, f"{penalty} must be a number in [-2, 2]"))
        if self.script_queue:
            answer = self.script_queue.pop(0)
        elif self.responder is not None:
            answer = self.responder(body)
        else:
            answer = Content("{}")
        if isinstance(answer, Failure):
            return self._error(answer)
        if isinstance(answer, Raw):
            return Response(answer.body, media_type=answer.media_type)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if isinstance(answer, Content):
            message["content"] = answer.text
            finish = answer.finish
        else:
            finish = answer.finish
            message["tool_calls"] = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for index, (name, args) in enumerate(answer.calls)
            ]
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", "standin"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    @staticmethod
    def _error(failure: Failure) -> Response:
        return JSONResponse(
            {
                "error": {
                    "message": failure.message,
                    "type": "invalid_request_error",
                    "code": failure.code,
                }
            },
            status_code=failure.status,
        )


API_KEY = "test-llm-key"


def messages_text(body: dict[str, Any], role: str) -> str:
    """All message contents of ``role`` in a recorded request, joined."""
    return "\n".join(
        str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == role
    )
