"""`ambient chat`: talk to the assistant from a terminal; it acts through the MCP tools."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ambient.agent.chat import OFFLINE, ChatEvent
from ambient.commands import err_console, existing_data_dir, fail, terminal
from ambient.runtime import discovered_settings
from ambient.startup import loading
from ambient.storage.users import registered
from ambient.wiring import open_state

if TYPE_CHECKING:
    from ambient.agent.hub import ChatRuntime

console = terminal()


def _show(event: ChatEvent) -> None:
    if event.type == "message":
        console.print(escape(event.text or ""), soft_wrap=True)
    elif event.type == "tool_call":
        called = f"{event.function} {event.arguments}"
        console.print(f"[dim]→ {escape(called)}[/]", soft_wrap=True)
    elif event.type == "tool_result":
        mark = "[green]ok[/]" if event.ok else "[red]failed[/]"
        first = (event.text or "").splitlines()[0][:200] if event.text else ""
        console.print(
            f"[dim]← {escape(event.function or '')} {mark} {escape(first)}[/]", soft_wrap=True
        )
    elif event.type == "error":
        console.print(f"[red]{escape(event.text or '')}[/]", soft_wrap=True)


async def _chat(user: str, message: str | None, yes: bool) -> int:
    # The command holds the database, as `ambient migrate` and every other command do.
    settings = existing_data_dir(discovered_settings())
    async with open_state(settings, stdio_user=user, upgrade=True) as state:
        row = await registered(state.db, user, fail)
        # The agent (our MCP server in-process, its tools and the SDK) is made for the first
        # message a model answers: a user who is not registered, who leaves at the first
        # prompt, or who has no model to talk to is told so without it.
        runtime: ChatRuntime | None = None
        # One message from the command line, or each one asked until the person leaves.
        typed = iter(lambda: _ask(row.assistant_name), None)
        text: str | None
        # One message's turn that did not do what was asked (no model, an error, a write
        # declined) exits 1: a script reads that from the code. A session ends with 0.
        undone = False
        try:
            for text in [message] if message is not None else typed:
                if state.settings.openai_api_key is None:
                    # No model (openai_client's None): every message is answered with how to
                    # set one up, as the agent's turn answers it; no agent to make for that.
                    (console if message is None else err_console).print(
                        escape(OFFLINE), soft_wrap=True
                    )
                    undone = True
                    continue
                if runtime is None:
                    with loading():
                        from ambient.agent.hub import ChatRuntime
                    runtime = ChatRuntime.of(state)
                    agent = await runtime.agent(row)
                    conversation = await runtime.conversations.open(user, None)
                approve: bool | None = None
                confirm_id: str | None = None
                auto, approved = yes, 0  # --yes for this message, and its rounds approved
                while True:
                    confirm: ChatEvent | None = None
                    async for event in agent.turn(
                        conversation, text, approve=approve, confirm_id=confirm_id
                    ):
                        _show(event)
                        undone |= event.type == "error"
                        if event.type == "confirm":
                            confirm = event
                    for call in confirm.calls if confirm else []:
                        asked = escape(f"{call['function']} {call['arguments']}")
                        console.print(f"[yellow]! {asked}[/]")
                    # Nobody to ask (no terminal, no --yes): declined once, not on and on to a
                    # model that asks for the same call after each refusal.
                    if confirm is None or (approve is False and not sys.stdin.isatty()):
                        break
                    if auto and approved >= MAX_APPROVED:
                        # A model that asks for another write after each result (a small local
                        # one repeats its calls) was approved on and on, each write run.
                        err_console.print(
                            f"--yes approved {MAX_APPROVED} rounds of calls for this message: "
                            "declined the rest"
                        )
                        approve, auto = False, False
                    else:
                        approved += 1
                        approve = auto or (sys.stdin.isatty() and typer.confirm("Run these?"))
                    undone |= not approve
                    confirm_id = confirm.confirm_id
                    text = None
        finally:
            if runtime is not None:
                await runtime.hub.close()
        return int(undone and message is not None)


# The rounds of calls --yes approves for one message: a task's work, not a loop's.
MAX_APPROVED = 5


def _ask(name: str) -> str | None:
    try:
        text = console.input(f"[bold]you → {escape(name)}[/] ").strip()
    except (EOFError, KeyboardInterrupt):
        return None
    return text if text and text not in ("exit", "quit") else None


def chat(
    message: Annotated[
        str | None, typer.Argument(help="one message; without it, an interactive session")
    ] = None,
    user: Annotated[str, typer.Option("--user", envvar="AMBIENT_USER", help="acting user")] = "dev",
    yes: Annotated[bool, typer.Option("--yes", help="approve destructive tool calls")] = False,
) -> None:
    """Chat with the assistant (needs OPENAI_API_KEY; it says so otherwise)."""
    raise typer.Exit(asyncio.run(_chat(user, message, yes)))
