"""A JSON body's field the API does not know is refused by name, as a task config's or an
alert's already was: pydantic dropped it, so a misspelt run_key approved whichever run was
current, a share link's misspelt expiry lived the default 7 days, and the answer said nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ambient.settings import Settings
from api.app import create_app
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve

ALERT = {
    "source": "manual",
    "cluster_id": "cls-7kq2m0ab",
    "namespace": "default",
    "workload": "web",
}
RUN = "/remediations/0123456789abcdef"
DAY = {"log_source": {"type": "file", "path": "app.log"}, "start": "2026-11-20T00:00:00Z"}

# (method, path, body with one misspelt field, that field)
MISSPELT: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/share", {"title": "t", "body": "b", "expires_days": 1}, "expires_days"),
    ("POST", f"{RUN}/approval", {"approve": True, "runkey": "r"}, "runkey"),
    ("POST", f"{RUN}/abort", {"run": "r"}, "run"),
    ("POST", "/remediations", {"alert": ALERT, "mod": "execute"}, "mod"),
    ("POST", "/remediations/score", {"alert": ALERT, "dryrun": True}, "dryrun"),
    ("PATCH", "/users/admin/permissions", {"role": "admin", "rollback": "execute"}, "rollback"),
    (
        "POST",
        "/tasks",
        {"type": "web_monitor", "config": {"urls": ["https://example.com/"]}, "nmae": "x"},
        "nmae",
    ),
    ("PUT", "/agent/digest", {"enabled": True, "every": 5}, "every"),
    ("POST", "/briefings/send", {"day": "2026-11-20"}, "day"),
    ("POST", "/briefings/analyze", {**DAY, "end": "2026-11-21T00:00:00Z", "top": 5}, "top"),
    ("POST", "/xiaozhi/devices", {"device_id": "aa:bb:cc:dd:ee:ff", "speaker": ["x"]}, "speaker"),
    (
        "POST",
        "/xiaozhi/endpoints",
        {"user": "admin", "url": "wss://api.xiaozhi.me/mcp/?token=x", "verbose": True},
        "verbose",
    ),
    (
        "POST",
        "/discussions",
        {"from_id": "a", "content": "c", "topic": "t", "replyto": "m"},
        "replyto",
    ),
    ("POST", "/discussions/disc_1/messages", {"from_id": "a", "content": "c", "tag": ["x"]}, "tag"),
    ("POST", "/chat", {"message": "hi", "conversation": "c1"}, "conversation"),
    # The CLI's --user written as the field: it greeted the caller, spending their briefing.
    ("POST", "/voice/greeting", {"user": "bob", "audio": False}, "user"),
    (
        "POST",
        "/cloud/dashboard-image",
        {"image_url": "data:image/png;base64,iVBORw0KGgo=", "prompt": "x"},
        "prompt",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"), MISSPELT, ids=[f"{m} {p}" for m, p, _, _ in MISSPELT]
)
async def test_a_misspelt_field_of_a_body_is_refused_by_name(
    settings: Settings, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    settings = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(settings)
        answer = await http.request(method, path, json=body, headers=admin)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert [(d["loc"], d["type"]) for d in detail] == [(["body", field], "extra_forbidden")]
        # Without it the body is read (whatever the service then says: never 422 for it).
        del body[field]
        answer = await http.request(method, path, json=body, headers=admin)
        assert answer.status_code != 422 or field not in answer.text, answer.text
