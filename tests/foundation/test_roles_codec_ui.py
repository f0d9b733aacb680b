"""The Temporal Web UI of `ambient dev` decodes encrypted payloads through the guarded codec.

A real dev stack (child processes on free ports) with AMBIENT_PAYLOAD_KEY, a workflow whose
input is encrypted in history, and the real Web UI in headless chromium: the UI calls
/codec/ui/{codec token}/decode and shows the clear input, and nothing else opens the codec.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from pydantic import SecretStr

from ambient import temporal
from ambient.codec import new_key
from ambient.settings import Settings
from tests.conftest import unique
from tests.support.servers import HANG, free_port, http_client

STARTUP_SECONDS = 120


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("no chromium on PATH: apt-get install -y chromium (see .ci/run)")


@pytest.mark.devserver
async def test_web_ui_decodes_payloads_through_the_codec_with_the_dev_codec_token(
    tmp_path: Path,
) -> None:
    key = new_key()
    api_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBIENT_")}
    env["AMBIENT_PAYLOAD_KEY"] = key
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, read in a thread
        [
            sys.executable,
            "-m",
            "ambient.cli",
            "dev",
            "--data-dir",
            str(tmp_path),
            "--api-port",
            str(api_port),
            "--temporal-port",
            str(temporal_port),
            "--ui-port",
            str(ui_port),
            "--metrics-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    stdout = process.stdout
    output: list[str] = []

    def wait_until_up() -> None:
        for line in stdout:
            output.append(line)
            if "Press Ctrl-C to stop." in line or "ambient dev:" in line:
                return

    try:
        await asyncio.wait_for(asyncio.to_thread(wait_until_up), STARTUP_SECONDS)
        assert any("ambient-ops is up" in line for line in output), "".join(output)
        codec_token = (tmp_path / "codec-token").read_text().strip()
        # Commands beside the stack learn that it encrypts (its key's id), never its key.
        runtime = (tmp_path / "runtime.json").read_text()
        assert json.loads(runtime)["payload_key_id"] == "k1" and key not in runtime

        # A workflow whose input is encrypted in history (no worker needs to run it).
        settings = Settings(
            payload_key=SecretStr(key),
            temporal_address=f"127.0.0.1:{temporal_port}",
            _env_file=None,  # type: ignore[call-arg]
        )
        client = await temporal.connect(settings)
        marker = unique("codec-marker")
        workflow_id = unique("codec-ui")
        await client.start_workflow(
            "NobodyRunsThis", {"note": marker}, id=workflow_id, task_queue=unique("no-worker")
        )
        history = (await client.get_workflow_handle(workflow_id).fetch_history()).to_json()
        assert marker not in history

        # Nobody else opens the codec: no token, and the dev user's API is not the UI's path.
        async with http_client() as http:
            closed = await http.post(
                f"http://127.0.0.1:{api_port}/codec/decode", json={"payloads": []}
            )
        assert closed.status_code == 401

        codec_calls: list[tuple[str, int]] = []
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=_chromium(), args=["--no-sandbox"], headless=True
            )
            try:
                page = await browser.new_page()
                page.set_default_timeout(HANG * 1000)  # the Web UI's load on a loaded host
                page.on(
                    "response",
                    lambda r: codec_calls.append((r.url, r.status)) if "/codec/" in r.url else None,
                )
                quoted = urllib.parse.quote(workflow_id, safe="")
                await page.goto(f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{quoted}")
                await page.wait_for_function(
                    "marker => document.documentElement.innerHTML.includes(marker)",
                    arg=marker,
                    timeout=HANG * 1000,
                )
            finally:
                await browser.close()
        expected = f"http://127.0.0.1:{api_port}/codec/ui/{codec_token}/decode"
        assert codec_calls and {status for _, status in codec_calls} == {200}
        # The UI adds query parameters (preserveStorageRefs=true); the path is ours.
        assert {url.split("?")[0] for url, _ in codec_calls} == {expected}
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.to_thread(process.communicate, timeout=60)
        output.append(rest)
    log = "".join(output)
    assert "/codec/ui/***/decode" in log
    assert codec_token not in log
