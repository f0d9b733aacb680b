"""`ambient llm install|serve|status`: the opt-in local model (ambient/local_llm.py)."""

from __future__ import annotations

import signal
import threading

import typer
from rich.markup import escape

from ambient.commands import fail, terminal
from ambient.local_llm import Layout, LocalLLMError, ensure_server, install, status
from ambient.settings import Settings

app = typer.Typer()  # its help: ambient/cli_group.py LAZY
console = terminal()


def _say(line: str) -> None:
    """A line of the install's progress: its paths and errors are text, not Rich markup."""
    console.print(line, soft_wrap=True, highlight=False, markup=False)


@app.command("install")
def install_command() -> None:
    """Assemble and hash-check the weights, build llama-server, write the chat template."""
    settings = Settings()
    try:
        layout = install(settings, _say)
    except LocalLLMError as exc:
        raise fail(f"ambient llm install: {exc}") from None
    ready = f"[green]local model ready[/] in {escape(str(layout.root))}: `ambient llm serve`"
    console.print(ready, soft_wrap=True, highlight=False)


@app.command("serve")
def serve_command() -> None:
    """Serve the local model on 127.0.0.1 until Ctrl-C (reuses a server already running)."""
    settings = Settings()
    try:
        server = ensure_server(settings)
    except LocalLLMError as exc:
        raise fail(f"ambient llm serve: {exc}") from None
    if not server.owned:
        _say(f"already serving at {server.url}/v1")
        return
    _say(f"serving at {server.url}/v1 (log {Layout.of(settings).server_log}); Ctrl-C stops")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            assert server.process is not None
            if server.process.poll() is not None:
                raise fail(f"llama-server exited with {server.process.returncode}")
    finally:
        server.stop()


@app.command("status")
def status_command() -> None:
    """What is installed and whether the server answers."""
    report = status(Settings())
    console.print_json(data=report)
    raise typer.Exit(0 if report["serving"] else 1)
