"""Payload encryption: history holds no clear text; the worker and codec endpoint read it."""

import base64
import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.codec import CodecKeyError, EncryptionCodec, new_key, parse_key
from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.replay import replay_files
from ambient.settings import Environment, Settings
from ambient.storage.repositories import UserRepository
from api.app import create_app
from tests.conftest import running_worker, unique
from tests.support.servers import free_port, serve
from tests.support.workflows import TEST_WORKFLOWS, PingInput, PingWorkflow

SECRET = "smtp-password-hunter2"


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
    plain = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'"hello"').decode(),
            }
        ]
    }
    async with (
        serve(create_app(prod)) as base,
        httpx.AsyncClient(base_url=base, trust_env=False) as http,
    ):
        assert (await http.post("/codec/encode", json=plain)).status_code == 401
        token = (await http.post("/users", json={"name": "ops"})).json()["token"]
        auth = {"Authorization": f"Bearer {token}", "X-Namespace": "default"}
        encoded = (await http.post("/codec/encode", json=plain, headers=auth)).json()
        assert encoded != plain
        assert b"hello" not in base64.b64decode(encoded["payloads"][0]["data"])
        decoded = (await http.post("/codec/decode", json=encoded, headers=auth)).json()
        assert decoded == plain
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
