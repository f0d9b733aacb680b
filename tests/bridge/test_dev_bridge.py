"""`ambient dev` runs the bridge (in its API child): a registered endpoint is dialed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import unique
from tests.foundation.test_dev_stack import DevStack
from tests.standins.xiaozhi_broker import running_broker
from tests.support.servers import http_client


@pytest.mark.devserver
async def test_ambient_dev_dials_an_endpoint_registered_over_its_api_within_5s(
    tmp_path: Path,
) -> None:
    token = unique("jwt")
    stack = DevStack(tmp_path / "data", {"AMBIENT_FETCH_ALLOW_CIDRS": "127.0.0.1/32"})
    await stack.start()
    try:
        bearer = {"Authorization": f"Bearer {(stack.data_dir / 'dev-token').read_text().strip()}"}
        async with (
            running_broker({token}) as broker,
            http_client(stack.api, timeout=30) as http,
        ):
            body = {"user": "dev", "url": broker.url(token)}
            added = await http.post("/xiaozhi/endpoints", json=body, headers=bearer)
            assert added.status_code == 201, added.text
            connection = await broker.held(token)
            # 小智 is given the voice profile, not the full list: a handful of tools whose
            # tools/list frame fits xiaozhi.me's 8 KB, answering in speakable text.
            names = {tool["name"] for tool in connection.tools}
            assert "greet" in names and "what_needs_me" in names and len(names) <= 10
            listed = [f for f in connection.frames if '"tools"' in f and '"result"' in f]
            assert listed and len(listed[0].encode()) <= 8192
            answer = await connection.call_tool("what_needs_me", {})
            text = answer["result"]["content"][0]["text"]
            assert text and len(text) <= 300 and "remediation/" not in text
            [row] = (await http.get("/xiaozhi/endpoints", headers=bearer)).json()
            assert row["state"] == "connected"
    finally:
        assert await stack.stop() == 0, "".join(stack.output)
    assert "小智 bridge" in "".join(stack.output)
