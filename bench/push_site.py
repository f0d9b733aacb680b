"""Push endpoints for the fan-out benchmark (own process): WeCom-shaped, webhook, SMTP."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

counts = {"wecom": 0, "webhook": 0, "email": 0}


async def wecom(request: Request) -> Response:
    await request.body()
    counts["wecom"] += 1
    return JSONResponse({"errcode": 0, "errmsg": "ok"})


async def webhook(request: Request) -> Response:
    await request.body()
    counts["webhook"] += 1
    return Response("ok")


async def stats(request: Request) -> Response:
    return JSONResponse(counts)


class Sink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        counts["email"] += 1
        return "250 OK"


app = Starlette(
    routes=[
        Route("/cgi-bin/webhook/send", wecom, methods=["POST"]),
        Route("/hook", webhook, methods=["POST"]),
        Route("/stats", stats),
    ]
)

if __name__ == "__main__":
    http_port, smtp_port = int(sys.argv[1]), int(sys.argv[2])
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    asyncio.run(uvicorn.Server(uvicorn.Config(app, port=http_port, log_level="warning")).serve())
