"""A 422 or a refusal never says a credential back: a key-shaped `secret:` name, a channel or
target sent in another shape (a string, a list, under a wrong key), a task's targets and
notification; None stays null."""

from __future__ import annotations

import httpx
import pytest

from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.notify import Target
from ambient.domain.push import secret_shown, target_problem
from tests.conftest import unique
from tests.foundation.test_fuzz_front_doors import WEB, offline_settings  # noqa: F401
from tests.foundation.test_fuzz_front_doors import api as task_api  # noqa: F401
from tests.notify.test_push_config import api  # noqa: F401  (the API as bob)

UUID_KEY = "693a91f6-7f3e-4c2a-9d5b-0c1e2f3a4b5c"
HEX_TOKEN = "5f0e2c9d" * 8


def _unsaid(text: str, *secrets: str) -> bool:
    return not any(secret[4:] in text for secret in secrets)


@pytest.mark.parametrize("key", [UUID_KEY, HEX_TOKEN])
def test_a_key_shaped_secret_name_is_said_by_its_first_characters(key: str) -> None:
    assert secret_shown(key) == key[:4] + "…"
    assert secret_shown(f"{key}?at=x") == key[:4] + "…"
    assert secret_shown("ops-bot") == "ops-bot"
    problem = target_problem(Target(type="webhook", target=f"secret:{key}?x=1"))
    assert problem is not None and _unsaid(str(problem), key), str(problem)
    resolver = SecretResolver({})
    for admin in (False, True):
        with pytest.raises(PermanentNotifyError) as refused:
            resolver.check_access(f"secret:{key}", user="bob", is_admin=admin)
        assert _unsaid(str(refused.value), key) and key[:4] in str(refused.value)
    with pytest.raises(PermanentNotifyError) as refused:
        resolver.resolve(f"secret:{key}#x")
    assert _unsaid(str(refused.value), key), str(refused.value)


async def test_push_channels_in_any_shape_are_not_echoed(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    key = unique("K3Y") + "abcdefgh"
    for channels in (
        [{"type": "webhook", "target": f"secret:{UUID_KEY}?x=1"}],
        [{"type": "wecom", "target": f"secret:{HEX_TOKEN}", "kinds": ["nope"]}],
        f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}",
        [{"type": "wecom", "url": f"https://qyapi.weixin.qq.com/x?key={key}"}],
        [{"type": "inbox", "url": f"https://x.example/?key={key}"}],
    ):
        answer = await api.put("/users/me/push", json={"channels": channels})
        assert answer.status_code == 422, answer.text
        assert _unsaid(answer.text, key, UUID_KEY, HEX_TOKEN), answer.text
    # None and numbers are said as sent (not "null"), a channel's type and kinds too.
    answer = await api.put("/users/me/push", json={"channels": [{"type": "wecom", "target": None}]})
    assert [e["input"] for e in answer.json()["detail"]] == [None], answer.text
    answer = await api.put(
        "/users/me/push", json={"channels": [{"type": "wecom", "target": "x", "kinds": ["no"]}]}
    )
    assert "no" in [e["input"] for e in answer.json()["detail"]], answer.text


async def test_a_tasks_targets_and_notification_are_not_echoed(
    task_api: httpx.AsyncClient,  # noqa: F811
) -> None:
    key = unique("K3Y") + "abcdefgh"
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"
    for config in (
        {**WEB, "targets": [url]},
        {**WEB, "targets": url},
        {**WEB, "targets": [{"type": "wecom", "url": url}]},
        {**WEB, "notification": url},
    ):
        answer = await task_api.post("/tasks", json={"type": "web_monitor", "config": config})
        assert answer.status_code == 422, answer.text
        assert _unsaid(answer.text, key), answer.text
