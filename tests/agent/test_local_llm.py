"""The opt-in local model: assembly and hash check, the template fix, starting, reusing and
failing servers, and the one switch that points every LLM use at it. No model runs here."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ambient import local_llm
from ambient import local_llm_template as template
from ambient.devstack import DevOptions, DevStackError, start_local_llm
from ambient.local_llm import (
    Layout,
    LocalLLMError,
    assemble,
    check_weights,
    chunk_files,
    ensure_server,
    install_weights,
    start_server,
)
from ambient.local_llm_template import gguf_metadata_string, patch_template
from ambient.runtime import RuntimeInfo, discovered_settings, write_runtime
from ambient.settings import LOCAL_LLM_MODEL, Settings
from ambient.status import SystemStatus
from tests.support.servers import free_port, serve


def _settings(tmp_path: Path, **update: object) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None, **update)  # type: ignore[call-arg, arg-type]


def test_weights_are_assembled_in_order_and_a_wrong_hash_leaves_nothing(tmp_path: Path) -> None:
    chunks = []
    for number, data in enumerate([b"GGUF", b"-part-two", b"-three"], start=1):
        chunks.append(tmp_path / f"part{number:02d}.bin")
        chunks[-1].write_bytes(data)
    whole = b"GGUF-part-two-three"
    dest = tmp_path / "models" / "m.gguf"
    assemble(chunks, dest, sha256=hashlib.sha256(whole).hexdigest(), size=len(whole))
    assert dest.read_bytes() == whole

    wrong = tmp_path / "models" / "wrong.gguf"
    with pytest.raises(LocalLLMError, match="SHA-256 of the assembled model is"):
        assemble(list(reversed(chunks)), wrong, sha256=hashlib.sha256(whole).hexdigest(), size=None)
    assert not wrong.exists() and not list(wrong.parent.glob("*.partial"))
    with pytest.raises(LocalLLMError, match="assembled 19 bytes, expected 5"):
        assemble(chunks, wrong, sha256="0" * 64, size=5)


def test_weights_without_the_extra_installed_name_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_llm, "CHUNK_PACKAGES", ["ambient-no-such-weights-part1"])
    with pytest.raises(LocalLLMError, match=r"ambient-no-such-weights-part1==.* run `make llm`"):
        chunk_files()
    layout = Layout.of(_settings(tmp_path))
    with pytest.raises(LocalLLMError, match="run `make llm`"):
        install_weights(layout, print)
    assert not layout.model.exists()


def test_a_model_file_changed_after_its_check_is_refused(tmp_path: Path) -> None:
    layout = Layout.of(_settings(tmp_path))
    with pytest.raises(LocalLLMError, match="no model at"):
        check_weights(layout)
    layout.model.parent.mkdir(parents=True)
    layout.model.write_bytes(b"not the checked file")
    with pytest.raises(LocalLLMError, match="changed since its SHA-256 was checked"):
        check_weights(layout)


def _gguf(path: Path, metadata: list[tuple[str, int, object]]) -> None:
    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, kind, value in metadata:
        body += text(key) + struct.pack("<I", kind)
        if kind == 8:
            assert isinstance(value, str)
            body += text(value)
        elif kind == 4:
            body += struct.pack("<I", value)
        elif kind == 9:  # an array of strings, then of uint32
            assert isinstance(value, list)
            body += struct.pack("<IQ", 8, len(value)) + b"".join(text(v) for v in value)
    path.write_bytes(body)


def test_the_chat_template_is_read_from_the_gguf_metadata(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    _gguf(
        model,
        [
            ("general.architecture", 8, "qwen2"),
            ("qwen2.context_length", 4, 32768),
            ("tokenizer.ggml.tokens", 9, ["<|im_start|>", "<|im_end|>"]),
            ("tokenizer.chat_template", 8, "{{ messages }}"),
        ],
    )
    assert gguf_metadata_string(model, "tokenizer.chat_template") == "{{ messages }}"
    assert gguf_metadata_string(model, "general.architecture") == "qwen2"
    assert gguf_metadata_string(model, "general.name") is None
    (tmp_path / "x.bin").write_bytes(b"nope")
    with pytest.raises(LocalLLMError, match="not a GGUF file"):
        gguf_metadata_string(tmp_path / "x.bin", "tokenizer.chat_template")


# The shape of Qwen2.5's template: tools in the system turn, past calls in the history branch.
TEMPLATE = (
    """{%- for message in messages %}
{%- if message.role == "assistant" and message.tool_calls %}
    {{- '<|im_start|>assistant' }}
    {%- for tool_call in message.tool_calls %}
        {{- '\\n<tool_call>\\n{"name": "' }}
        {{- tool_call.function.name }}
        {{- '", "arguments": ' }}
        {{- tool_call.function.arguments }}
        {{- '}\\n</tool_call>' }}
    {%- endfor %}
    {{- '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{{- "For each function call, return a json object with function name and arguments """
    r"""within <tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, """
    r"""\"arguments\": <args-json-object>}}\n</tool_call><|im_end|>\n" }}"""
    """{{- '<|im_start|>assistant\\n' }}"""
)


def _render(template: str, request: dict[str, object]) -> str:
    return jinja2.Environment().from_string(template).render(**request)


def test_the_template_fix_changes_past_calls_only() -> None:
    patched = patch_template(TEMPLATE)
    single = template.PROBE_REQUEST
    # A single-turn prompt differs from the model's own only in how a call is to be written.
    assert _render(patched, single) == _render(TEMPLATE, single).replace(
        template.RENDERED_TAGS, template.RENDERED_FENCE
    )
    history = _render(patched, template.HISTORY_REQUEST)
    assert template.HISTORY_FENCE in history and "\n</tool_call>" not in history
    with pytest.raises(LocalLLMError, match="cannot serve tool calls"):
        patch_template("{{ messages }}")


def test_the_served_template_asks_for_calls_in_the_fence_its_parser_reads() -> None:
    """The GGUF's instruction shows a call in <tool_call> tags with doubled braces: the model
    copied both into its text, where the parser derived from the fenced history reads none."""
    prompt = _render(patch_template(TEMPLATE), template.PROBE_REQUEST)
    assert template.RENDERED_TAGS in _render(TEMPLATE, template.PROBE_REQUEST)
    assert "<tool_call>" not in prompt and "{{" not in prompt
    assert '```json\n{"name": <function-name>, "arguments": <args-json-object>}\n```' in prompt
    with pytest.raises(LocalLLMError, match="call tools as expected"):
        patch_template(TEMPLATE.replace("<tool_call></tool_call> XML tags", "tags"))


def _verified_layout(tmp_path: Path, script: str) -> tuple[Settings, Layout]:
    settings = _settings(tmp_path, local_llm_port=free_port())
    layout = Layout.of(settings)
    layout.model.parent.mkdir(parents=True)
    layout.model.write_bytes(b"GGUF")
    layout.verified.write_text(json.dumps(local_llm._stamp(layout.model)))
    layout.server_binary.parent.mkdir(parents=True)
    layout.server_binary.write_text(script)
    layout.server_binary.chmod(0o755)
    layout.template.write_text("{{ messages }}")
    return settings, layout


def test_a_server_that_dies_while_starting_is_an_error_with_its_log(tmp_path: Path) -> None:
    script = "#!/bin/sh\necho \"error: failed to load model '$2'\"\nexit 3\n"
    settings, layout = _verified_layout(tmp_path, script)
    with pytest.raises(LocalLLMError, match=r"exited with 3 .*failed to load model"):
        start_server(settings, layout, template=layout.template)


def _answering(model_id: str) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": model_id, "object": "model"}]})

    return Starlette(routes=[Route("/health", health), Route("/v1/models", models)])


async def test_a_server_already_serving_the_model_is_reused_and_another_refused(
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = _settings(tmp_path, local_llm_port=port)
    async with serve(_answering(LOCAL_LLM_MODEL), port=port):
        server = await asyncio.to_thread(ensure_server, settings)
    assert (server.url, server.owned) == (f"http://127.0.0.1:{port}", False)
    server.stop()  # not ours: nothing to stop, nothing fails

    port = free_port()
    settings = _settings(tmp_path, local_llm_port=port)
    async with serve(_answering("someone-elses-model"), port=port):
        with pytest.raises(LocalLLMError, match="serves 'someone-elses-model'"):
            await asyncio.to_thread(ensure_server, settings)


def test_a_template_from_an_older_install_is_refused_with_the_command_that_renews_it(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, local_llm_port=free_port())
    layout = Layout.of(settings)
    layout.template.parent.mkdir(parents=True)
    # What installs before the instruction fix wrote: past calls fenced, the instruction not.
    old = TEMPLATE.replace(template.TAG_OPEN, template.FENCE_OPEN).replace(
        template.TAG_CLOSE, template.FENCE_CLOSE
    )
    layout.template.write_text(old)
    with pytest.raises(LocalLLMError, match="run `ambient llm install` to renew it"):
        ensure_server(settings)


def test_dev_with_local_llm_and_nothing_installed_stops_with_the_reason(tmp_path: Path) -> None:
    settings = _settings(tmp_path, local_llm=True, local_llm_port=free_port())
    opts = DevOptions(
        data_dir=tmp_path,
        api_port=free_port(),
        temporal_port=free_port(),
        ui_port=free_port(),
        temporal_address=None,
        metrics_port=None,
    )
    from rich.console import Console

    with pytest.raises(DevStackError, match=r"--local-llm: .*run `make llm`"):
        start_local_llm(settings, opts, Console(file=None, quiet=True))
    assert opts.children == {}


def test_local_llm_points_every_llm_client_at_the_local_server(tmp_path: Path) -> None:
    offline = _settings(tmp_path)
    assert (offline.llm_mode, offline.llm_description) == (
        "offline",
        "offline (deterministic rules, no model)",
    )
    local = _settings(tmp_path, local_llm=True, local_llm_port=8123, openai_api_key="sk-remote")
    # The flag wins over a remote key: the briefing, scoring, chat and event agent all read
    # these three fields.
    assert local.openai_base_url == "http://127.0.0.1:8123/v1"
    assert local.llm_model == LOCAL_LLM_MODEL
    assert local.openai_api_key is not None and local.openai_api_key.get_secret_value() == "local"
    assert local.llm_mode == "local"
    assert (offline.llm_timeout, local.llm_timeout) == (60.0, 3600.0)
    assert local.llm_description == f"local {LOCAL_LLM_MODEL} at http://127.0.0.1:8123/v1"
    assert "llm" in SystemStatus.model_fields


def test_commands_beside_a_dev_stack_on_the_local_model_report_it(tmp_path: Path) -> None:
    write_runtime(
        tmp_path,
        RuntimeInfo(
            pid=os.getpid(),
            temporal_address="127.0.0.1:7233",
            api_host="127.0.0.1",
            api_port=8000,
            local_llm_port=8124,
        ),
    )
    settings = discovered_settings(data_dir=tmp_path, _env_file=None)
    assert settings.llm_description == f"local {LOCAL_LLM_MODEL} at http://127.0.0.1:8124/v1"
    assert settings.temporal_address == "127.0.0.1:7233"


def test_the_cache_dir_defaults_to_the_data_dir(tmp_path: Path) -> None:
    assert Layout.of(_settings(tmp_path)).root == (tmp_path / "llm").resolve()
    shared = tmp_path / "shared-cache"
    assert Layout.of(_settings(tmp_path, llm_cache_dir=shared)).model == (
        shared.resolve() / "models" / local_llm.MODEL_FILE
    )


# A stand-in llama-server: answers /health and /v1/models with our model's id on its --port.
FAKE_SERVER = f"""#!{sys.executable}
import http.server, json, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        model = {{"data": [{{"id": "{LOCAL_LLM_MODEL}"}}]}}
        said = {{"status": "ok"}} if self.path == "/health" else model
        body = json.dumps(said).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Answer).serve_forever()
"""

STARTER = """
import sys, time
from pathlib import Path
from ambient.local_llm import Layout, start_server
from ambient.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]), local_llm_port=int(sys.argv[2]), _env_file=None)
layout = Layout.of(settings)
server = start_server(settings, layout, template=layout.template)
print(server.process.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_model_server_ends_with_the_process_that_started_it_however_it_ends(
    tmp_path: Path,
) -> None:
    """`ambient dev --local-llm` killed (SIGKILL, the OOM killer): its Temporal, worker and API
    got SIGTERM from the kernel, llama-server ran on holding gigabytes, and the next dev reused
    it as a server it did not own, so nothing ever stopped it."""
    settings, _ = _verified_layout(tmp_path, FAKE_SERVER)
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path), str(settings.local_llm_port)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert starter.stdout is not None
        pid = int(starter.stdout.readline())
        assert _running(pid)
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 30
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = not _running(pid)
    finally:
        starter.kill()
        with contextlib.suppress(ProcessLookupError, NameError):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert ended, "the model server outlived the process that started it"
