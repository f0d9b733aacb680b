"""Push endpoints for the fan-out benchmark (own process): WeCom-shaped, webhook, SMTP.

Every message is recorded by the key that identifies its delivery (webhook: the
X-Ambient-Idempotency-Key; WeCom: the title line; email: the Message-ID), so the benchmark
counts duplicates and losses from what arrived, not from what the sender believes.
`POST /mode {"fail_every": N}` makes every Nth webhook and WeCom request answer 500 before
recording anything (a flaky endpoint); 0 turns that off.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from email import message_from_bytes

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

received: dict[str, Counter[str]] = {"wecom": Counter(), "webhook": Counter(), "email": Counter()}
flaky = {"fail_every": 0, "seen": 0, "failed": 0}


def _fail_now() -> bool:
    if not flaky["fail_every"]:
        return False
    flaky["seen"] += 1
    if flaky["seen"] % flaky["fail_every"] == 0:
        flaky["failed"] += 1
        return True
    return False


async def wecom(request: Request) -> Response:
    body = await request.json()
    if _fail_now():
        return Response("injected", status_code=500)
    title = body["markdown"]["content"].splitlines()[0]
    received["wecom"][title] += 1
    return JSONResponse({"errcode": 0, "errmsg": "ok"})


async def webhook(request: Request) -> Response:
    await request.body()
    if _fail_now():
        return Response("injected", status_code=500)
    received["webhook"][request.headers["x-ambient-idempotency-key"]] += 1
    return Response("ok")


async def stats(request: Request) -> Response:
    return JSONResponse(
        {
            "received": {name: dict(keys) for name, keys in received.items()},
            "injected_failures": flaky["failed"],
        }
    )


async def mode(request: Request) -> Response:
    flaky["fail_every"] = int((await request.json())["fail_every"])
    flaky["seen"] = 0
    return JSONResponse(flaky)


class Sink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        received["email"][str(message_from_bytes(envelope.content)["Message-ID"])] += 1
        return "250 OK"


app = Starlette(
    routes=[
        Route("/cgi-bin/webhook/send", wecom, methods=["POST"]),
        Route("/hook", webhook, methods=["POST"]),
        Route("/stats", stats),
        Route("/mode", mode, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    http_port, smtp_port = int(sys.argv[1]), int(sys.argv[2])
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    asyncio.run(uvicorn.Server(uvicorn.Config(app, port=http_port, log_level="warning")).serve())
