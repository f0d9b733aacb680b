"""xiaozhi-server's context provider client, as its code does it (xinnan-tech/xiaozhi-esp32-server,
main/xiaozhi-server/core/utils/context_provider.py, ``ContextDataProvider.fetch_all``).

- The ``context_providers`` list is the server's config (config.yaml in a single-module
  deployment, the agent's in a full one): the same ``headers`` go with every device's request;
  only the ``device-id`` header, set last, tells the devices apart (lines 29-32).
- ``httpx.get(url, headers=..., timeout=3)``: a plain GET that follows no redirect (line 35),
  blocking the server's event loop while it waits (called from handle_connection).
- Only a 200 whose JSON body is an object with ``code`` 0 is used; a ``data`` object becomes the
  lines ``- **key：** value`` (Python's ``str`` of the value), a list ``- item``, anything else
  ``- data``; every other answer is logged and the device wakes without it (lines 37-58).

The 3 s is the default here too. Tests that check what is said, not how fast, pass a loaded
host's wait: the time is a benchmark's figure (bench/xiaozhi_voice.py), never a test's.
"""

from __future__ import annotations

from typing import Any

import httpx

# xiaozhi-server's own timeout for one provider's answer.
CONTEXT_TIMEOUT = 3.0


def fetch_all(
    providers: list[dict[str, Any]], device_id: str, timeout: float = CONTEXT_TIMEOUT
) -> tuple[str, list[str]]:
    """The text put into the prompt for ``device_id``, and what the server logged instead."""
    lines: list[str] = []
    logged: list[str] = []
    for provider in providers:
        url = provider.get("url")
        if not url:
            continue
        try:
            headers = dict(provider.get("headers") or {})
            headers["device-id"] = device_id
            response = httpx.get(url, headers=headers, timeout=timeout)
            if response.status_code != 200:
                logged.append(f"API {url} 请求失败: {response.status_code}")
                continue
            result = response.json()
            if not isinstance(result, dict):
                logged.append(f"API {url} 返回的不是JSON字典")
            elif result.get("code") != 0:
                logged.append(f"API {url} 返回错误码: {result.get('msg')}")
            elif isinstance(data := result.get("data"), dict):
                lines.extend(f"- **{k}：** {v}" for k, v in data.items())
            elif isinstance(data, list):
                lines.extend(f"- {item}" for item in data)
            else:
                lines.append(f"- {data}")
        except Exception as exc:
            logged.append(f"获取上下文数据 {url} 失败: {exc}")
    return "\n".join(lines), logged
