"""Payload encryption: history holds no clear text; the worker and codec endpoint read it."""

import base64
import json
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.codec import CodecKeyError, EncryptionCodec, new_key, parse_key
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.replay import replay_files
from ambient.settings import Environment, Settings
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve
from tests.support.workflows import (
    TEST_WORKFLOWS,
    PingInput,
    PingWorkflow,
    RelayFailureWorkflow,
)

SECRET = "smtp-password-hunter2"
PLAIN = {
    "payloads": [
        {
            "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
            "data": base64.b64encode(b'"hello"').decode(),
        }
    ]
}


def _settings(base: Settings, **extra: object) -> Settings:
    return base.model_copy(update={"payload_key": SecretStr(new_key()), **extra})


async def test_history_holds_no_clear_text_and_replays_with_the_key(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, tmp_path: Path
) -> None:
    settings = _settings(deps.settings)
    # Same connection and time-skipping interceptor, encrypting converter.
    config = ts_env.client.config()
    config["data_converter"] = temporal.data_converter(settings)
    client = Client(**config)
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name="alice"))
        await session.commit()
    async with running_worker(client, deps, workflows=[PingWorkflow]) as worker:
        handle = await client.start_workflow(
            PingWorkflow.run,
            PingInput(user="alice", text=SECRET),
            id=unique("enc"),
            task_queue=worker.task_queue,
        )
        result = await handle.result()
    assert result.deliveries[0].status == "sent"  # the worker decrypted its input

    history = (await handle.fetch_history()).to_json()
    assert SECRET not in history
    assert (
        "binary/encrypted"
        in base64.b64decode(
            json.loads(history)["events"][0]["workflowExecutionStartedEventAttributes"]["input"][
                "payloads"
            ][0]["metadata"]["encoding"]
        ).decode()
    )

    path = tmp_path / "enc.json"
    path.write_text(history)
    outcomes = await replay_files([path], TEST_WORKFLOWS, temporal.data_converter(settings))
    assert [o.error for o in outcomes] == [None]


PRICE_KEY = "price-api-key-hunter3"


@activity.defn
async def read_price() -> None:
    # As read_metric says a metric URL that failed (the URL's query holding its API key).
    url = f"https://prices.example.com/v1/quote?apikey={PRICE_KEY}"
    raise ApplicationError(f"1 read failed, the last: timed out after 20 s: {url}")


async def test_failure_messages_are_encrypted_in_history_and_read_by_the_client(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    config = ts_env.client.config()
    config["data_converter"] = temporal.data_converter(_settings(deps.settings))
    client = Client(**config)
    async with running_worker(
        client, deps, workflows=[RelayFailureWorkflow], activities=[read_price]
    ) as worker:
        handle = await client.start_workflow(
            RelayFailureWorkflow.run, "read_price", id=unique("fail"), task_queue=worker.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert PRICE_KEY in str(failed.value.cause.cause)  # decrypted for whoever holds the key
    assert PRICE_KEY not in (await handle.fetch_history()).to_json()


async def test_key_rotation_decrypts_old_payloads() -> None:
    old, new = parse_key(new_key()), parse_key(new_key())
    before = EncryptionCodec({"k1": old}, "k1")
    after = EncryptionCodec({"k1": old, "k2": new}, "k2")
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    sealed = await before.encode([payload])
    assert await after.decode(sealed) == [payload]
    resealed = await after.encode([payload])
    assert resealed[0].metadata["encryption-key-id"] == b"k2"
    with pytest.raises(CodecKeyError, match="unknown key id 'k2'"):
        await before.decode(resealed)
    assert await after.decode([payload]) == [payload]  # clear payloads pass through


def test_malformed_keys_are_refused() -> None:
    with pytest.raises(CodecKeyError, match="32 bytes"):
        parse_key(base64.urlsafe_b64encode(b"short").decode())


async def test_codec_endpoint_round_trips_and_needs_a_token_in_production(
    settings: Settings,
) -> None:
    prod = _settings(
        settings,
        environment=Environment.PRODUCTION,
        secret_key=SecretStr("a-real-secret-value-1234"),
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    async with (
        serve(create_app(prod)) as base,
        http_client(base) as http,
    ):
        assert (await http.post("/codec/encode", json=PLAIN)).status_code == 401
        auth = {**await admin_headers(prod), "X-Namespace": "default"}
        encoded = (await http.post("/codec/encode", json=PLAIN, headers=auth)).json()
        assert encoded != PLAIN
        assert b"hello" not in base64.b64decode(encoded["payloads"][0]["data"])
        decoded = (await http.post("/codec/decode", json=encoded, headers=auth)).json()
        assert decoded == PLAIN
        bad = await http.post("/codec/decode", content=b"not json", headers=auth)
        assert bad.status_code == 422
        preflight = await http.options(
            "/codec/decode",
            headers={
                "Origin": "http://localhost:8233",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:8233"
        # Only the codec is open to the Web UI's origin: a script there (its pages render
        # workflow data) could otherwise send credentialed requests to every other route.
        web_ui = {"Origin": "http://localhost:8233"}
        for path in ("/tasks", "/users", "/remediations/x/approve"):
            other = await http.options(
                path, headers={**web_ui, "Access-Control-Request-Method": "POST"}
            )
            assert "access-control-allow-origin" not in other.headers, (path, other.headers)
        answered = await http.get("/users/me", headers={**auth, **web_ui})
        assert answered.status_code == 200
        assert "access-control-allow-origin" not in answered.headers


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())


async def test_codec_needs_an_admin_or_the_codec_token_even_in_development(
    settings: Settings,
) -> None:
    codec_token = "ui-codec-token-0123456789"
    dev = _settings(
        settings,
        environment=Environment.DEVELOPMENT,
        codec_token=SecretStr(codec_token),
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    async with (
        serve(create_app(dev)) as base,
        http_client(base) as http,
    ):
        admin = await admin_headers(dev)
        member = (await http.post("/users", json={"name": "mem"}, headers=admin)).json()["token"]
        encoded = (await http.post("/codec/encode", json=PLAIN, headers=admin)).json()

        anonymous = await http.post("/codec/decode", json=encoded)
        assert anonymous.status_code == 401
        assert "admin's bearer token" in anonymous.json()["detail"]
        as_member = await http.post(
            "/codec/decode", json=encoded, headers={"Authorization": f"Bearer {member}"}
        )
        assert as_member.status_code == 403
        wrong = await http.post(
            "/codec/decode", json=encoded, headers={"Authorization": "Bearer amb_nope"}
        )
        assert wrong.status_code == 401
        for answer in (as_member, wrong, anonymous):
            assert "hello" not in answer.text

        # The Temporal Web UI cannot send a header: its endpoint carries the codec token.
        access = logging.getLogger("uvicorn.access")  # uvicorn's: it does not propagate
        lines, level = _Lines(), access.level
        access.addHandler(lines)
        access.setLevel(logging.INFO)
        try:
            ui = await http.post(f"/codec/ui/{codec_token}/decode", json=encoded)
        finally:
            access.removeHandler(lines)
            access.setLevel(level)
        assert ui.status_code == 200 and ui.json() == PLAIN
        assert any("/codec/ui/***/decode" in line for line in lines.seen)
        assert not any(codec_token in line for line in lines.seen)
        assert (await http.post("/codec/ui/guess/decode", json=encoded)).status_code == 401
        as_bearer = await http.post(
            "/codec/decode", json=encoded, headers={"Authorization": f"Bearer {codec_token}"}
        )
        assert as_bearer.json() == PLAIN


async def test_codec_token_path_is_refused_when_no_codec_token_is_configured(
    settings: Settings,
) -> None:
    dev = _settings(settings, temporal_address=f"127.0.0.1:{free_port()}")
    async with (
        serve(create_app(dev)) as base,
        http_client(base) as http,
    ):
        assert (await http.post("/codec/ui/x/decode", json=PLAIN)).status_code == 401
        assert (await http.post("/codec/ui//decode", json=PLAIN)).status_code in (401, 404)


async def test_a_payload_the_key_cannot_open_is_a_clear_error_not_a_500(
    settings: Settings,
) -> None:
    """The operator replaced AMBIENT_PAYLOAD_KEY without keeping the old one (same key id):
    the Web UI's decode of an older history says so instead of an internal error."""
    codec_token = "ui-codec-token-0123456789"
    app = _settings(
        settings, codec_token=SecretStr(codec_token), temporal_address=f"127.0.0.1:{free_port()}"
    )
    earlier = EncryptionCodec({app.payload_key_id: parse_key(new_key())}, app.payload_key_id)
    [sealed] = await earlier.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    async with (
        serve(create_app(app)) as base,
        http_client(base) as http,
    ):
        answer = await http.post(f"/codec/ui/{codec_token}/decode", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == (
        f"payload does not decrypt with key id {app.payload_key_id!r}: it was encrypted with "
        "another key of that id (keep a replaced key in AMBIENT_PAYLOAD_OLD_KEYS under its "
        "own id) or altered"
    )


async def test_a_body_that_is_not_utf8_is_refused_as_not_payloads_json_not_a_500(
    settings: Settings,
) -> None:
    """A Web UI behind a proxy that re-encodes (Latin-1, UTF-16) sent bytes that are no UTF-8:
    /codec/decode answered 500 Internal Server Error, and the Web UI showed nothing why."""
    codec_token = "ui-codec-token-0123456789"
    app = _settings(
        settings, codec_token=SecretStr(codec_token), temporal_address=f"127.0.0.1:{free_port()}"
    )
    async with (
        serve(create_app(app)) as base,
        http_client(base) as http,
    ):
        auth = await admin_headers(app)
        for body in (b'{"payloads": [\xff\xfe]}', '{"payloads": []}'.encode("utf-16")):
            for answer in (
                await http.post("/codec/decode", content=body, headers=auth),
                await http.post(f"/codec/ui/{codec_token}/decode", content=body),
            ):
                assert answer.status_code == 422, answer.text
                assert answer.json()["detail"].startswith("body is not Payloads JSON"), answer.text
