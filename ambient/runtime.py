"""Where `ambient dev` runs, recorded in the data dir so every other command finds it.

`ambient dev --temporal-port 17233 --api-port 18000` writes ``DATA_DIR/runtime.json``;
`ambient status`, `ambient task ...` and `ambient mcp` read it, so they talk to that stack
without repeating the ports. Environment variables (and `.env`) still win, and a file left
by a stack that is no longer running (its process is gone, or its pid is another process's
now: a restarted container hands the same small pids out again) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ambient.settings import Settings

RUNTIME_FILE = "runtime.json"


class RuntimeInfo(BaseModel):
    """The addresses of a running `ambient dev`."""

    pid: int
    temporal_address: str
    api_host: str
    api_port: int
    ui_url: str | None = None
    # `ambient dev --local-llm`: the stack's LLM is the local model on this port.
    local_llm_port: int | None = None
    # When ``pid`` started (clock ticks after boot, Linux): a pid used again is not the stack.
    started: int | None = None
    # The id of the key the stack encrypts payloads with (AMBIENT_PAYLOAD_KEY_ID; never the
    # key): a command without the key is refused before it writes a payload in clear text.
    payload_key_id: str | None = None


class PayloadKeyMissingError(Exception):
    """The running stack encrypts payloads and this command has no AMBIENT_PAYLOAD_KEY: it
    would write its inputs (a webhook's token among them) in clear text into Temporal and
    fail reading what the stack wrote, after its change was made."""


def write_runtime(data_dir: Path, info: RuntimeInfo) -> None:
    (data_dir / RUNTIME_FILE).write_text(info.model_dump_json(indent=2) + "\n")


def remove_runtime(data_dir: Path, pid: int) -> None:
    """Remove the file if it is still ours (a newer stack may have replaced it)."""
    info = read_runtime(data_dir, check_alive=False)
    if info is not None and info.pid == pid:
        (data_dir / RUNTIME_FILE).unlink(missing_ok=True)


def process_started(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (/proc's starttime), or None where
    there is no /proc or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the command in parentheses (which may hold spaces), starttime is the 20th field.
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def _alive(info: RuntimeInfo) -> bool:
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    started = process_started(info.pid)
    return info.started is None or started is None or started == info.started


def read_runtime(data_dir: Path, *, check_alive: bool = True) -> RuntimeInfo | None:
    """The recorded stack, or None if there is none (or it is no longer running)."""
    path = data_dir / RUNTIME_FILE
    try:
        info = RuntimeInfo.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError):
        return None
    if check_alive and not _alive(info):
        return None
    return info


def discovered_settings(*, check_key: bool = True, **overrides: Any) -> Settings:
    """Settings for a command: env and `.env` first, then the running `ambient dev`'s file.
    ``check_key``: a command that would reach that stack without the key it encrypts with is
    refused (`PayloadKeyMissingError`); off where a failure is only being described."""
    settings = Settings(**overrides)
    if (info := read_runtime(settings.data_dir)) is None:
        return settings
    if info.local_llm_port is not None and "local_llm" not in settings.model_fields_set:
        # Built anew, not copied: the local switch sets the endpoint fields when validated.
        if "local_llm_port" not in settings.model_fields_set:
            overrides = {**overrides, "local_llm_port": info.local_llm_port}
        settings = Settings(**overrides, local_llm=True)
    # The stack's Temporal: the recorded one, or the same address given (a stack on an
    # external Temporal records that address, and its .env gives it to every command too).
    reaches_it = (
        "temporal_address" not in settings.model_fields_set
        or settings.temporal_address.lower() == info.temporal_address.lower()
    )
    if check_key and reaches_it and info.payload_key_id is not None and not settings.payload_key:
        raise PayloadKeyMissingError(
            f"the stack running in {settings.data_dir} encrypts payloads (key id "
            f"{info.payload_key_id}): set AMBIENT_PAYLOAD_KEY to its key (in the .env the stack "
            "reads, or this shell's environment); nothing was sent"
        )
    # The settings fields this file provides, where env and `.env` gave none.
    provided = {"temporal_address", "api_host", "api_port"} - settings.model_fields_set
    return settings.model_copy(update=info.model_dump(include=provided))
