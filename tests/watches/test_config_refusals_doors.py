"""Through MCP and the API: a config field that would be ignored, or a page the worker must not
fetch, is refused with the field named, and nothing is created."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.deps import WorkerDeps
from ambient.storage.users import UserRepository
from ambient.watches.inputs import ConfigError, WorkerSilentError
from ambient.watches.service import TaskService
from ambient.wiring import AppState
from tests.conftest import unique
from tests.support.admins import admin_headers
from tests.support.api_worker import api_over_worker
from tests.support.users import register
from tests.watches.test_tasks_mcp import app, call, error_of, mcp

__all__ = ["app"]  # the fixture, used by name

WEB = {"urls": ["https://example.com/"]}
SOURCE = {"type": "http_json", "url": "https://example.com/v", "json_path": "$.v"}
BELOW_5 = {"op": "below", "value": 5}
METADATA_PAGE = "http://169.254.169.254/latest/meta-data"
NO_WORKLOAD_SAID = (
    "the metric names no TKE workload: remediation needs a tencent_monitor source with "
    "tke_cluster_instance_id, namespace and workload_name"
)


async def test_mcp_refuses_a_phone_number_for_the_email_method_by_name(app: AppState) -> None:
    async with mcp(app) as client:
        error = await error_of(
            client,
            "create_web_monitor",
            config={**WEB, "notification": {"method": "email", "phone_number": "+8613800000000"}},
        )
        assert "notification.phone_number" in error
        assert "only for method 'send_sms', 'sms', not 'email'" in error
        assert (await call(client, "list_tasks"))["tasks"] == []


async def test_a_notification_without_a_target_is_sent_to_the_users_channel_of_its_type(
    app: AppState,
) -> None:
    """`notification: {method: "wecom"}` was refused ("a wecom channel needs a target") though
    the user's push config held a WeCom robot, which the send fills it with (the docs and the
    field's own description say so). Taken when there is one; refused saying so when not."""
    config = {**WEB, "notification": {"method": "wecom"}}
    async with mcp(app) as client:
        error = await error_of(client, "create_web_monitor", config=config, name="no-robot")
        assert "notification: a wecom target, or a wecom channel in your push config" in error
        unknown = {**WEB, "targets": [{"type": "pager"}]}
        error = await error_of(client, "create_web_monitor", config=unknown, name="pager")
        assert "targets.0: unknown channel type 'pager'" in error, error
        assert (await call(client, "list_tasks"))["tasks"] == []
        robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aoc-4bc4-97a0"
        await call(client, "set_push_config", channels=[{"type": "wecom", "target": robot}])
        made = await call(client, "create_web_monitor", config=config, name="to-robot")
        assert made["task_id"].endswith("/to-robot"), made


NO_EMAIL = (
    "notification: an email target without an address sends to your push config's email "
    "channel, else to the email in your profile, and you have neither"
)
NO_PHONE = (
    "notification: an sms target without an address sends to your push config's sms "
    "channel, else to the phone in your profile, and you have neither"
)


async def test_an_email_or_sms_notification_with_no_address_anywhere_is_refused(
    app: AppState,
) -> None:
    """`notification: {method: "email"}` of a user with no email in the profile and no email
    channel was created, then every alert failed "no email target" (a tester's probe); sms
    likewise with no phone. Refused by field, as a webhook or robot with nowhere to go is;
    taken once a channel of that type gives an address."""
    email = {**WEB, "notification": {"method": "email"}}
    sms = {"message": "stand-up", "hour": 7, "notification": {"method": "send_sms"}}
    async with mcp(app) as client:
        error = await error_of(client, "create_web_monitor", config=email, name="no-mail")
        assert NO_EMAIL in error, error
        error = await error_of(client, "create_reminder", config=sms, name="no-phone")
        assert NO_PHONE in error, error
        assert (await call(client, "list_tasks"))["tasks"] == []
        channels = [{"type": "email", "target": "ops@example.com"}, {"type": "sms"}]
        refused = await client.call_tool("set_push_config", {"channels": channels})
        assert refused.is_error  # an sms channel with no phone anywhere: refused there too
        await call(client, "set_push_config", channels=channels[:1])
        mailed = {"message": "stand-up", "hour": 7, "notification": {"method": "email"}}
        made = await call(client, "create_reminder", config=mailed, name="to-mail")
        assert made["task_id"].endswith("/to-mail"), made
        error = await error_of(client, "create_reminder", config=sms, name="no-phone")
        assert NO_PHONE in error, error


async def test_the_api_refuses_it_naming_the_field_and_a_task_whose_address_went_still_updates(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """422 naming the notification at create and at an update that sets it. A reminder
    made while the profile had an email, whose owner removed it since, is not refused at an
    update that leaves its notification as it is (merged or whole): its sends say what is
    missing."""
    async with api_over_worker(dev_env, deps) as (settings, http):
        made = await http.post(
            "/users", json={"name": unique("mail")}, headers=await admin_headers(settings)
        )
        http.headers["Authorization"] = f"Bearer {made.json()['token']}"
        mailed = {"message": "stand-up", "hour": 7, "notification": {"method": "email"}}
        body = {"type": "schedule", "name": "standup", "config": mailed}
        refused = await http.post("/tasks", json=body)
        assert refused.status_code == 422, refused.text
        [detail] = refused.json()["detail"]
        assert detail["loc"] == ["body", "config", "notification"], detail
        assert NO_EMAIL.removeprefix("notification: ") in detail["msg"], detail
        assert (await http.get("/tasks")).json() == []
        profile = await http.patch("/users/me", json={"email": "lin@example.com"})
        assert profile.status_code == 200, profile.text
        created = await http.post("/tasks", json=body)
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]
        assert (await http.patch("/users/me", json={"email": None})).json()["email"] is None
        moved = await http.patch(f"/tasks/{task_id}/config", json={"hour": 8})
        assert moved.status_code == 200, moved.text
        assert moved.json()["changed"] == ["hour"]
        whole = await http.put(f"/tasks/{task_id}/config", json={**mailed, "hour": 9})
        assert whole.status_code == 200, whole.text
        texted = await http.patch(
            f"/tasks/{task_id}/config", json={"notification": {"method": "sms"}}
        )
        assert texted.status_code == 422, texted.text
        [detail] = texted.json()["detail"]  # the body is the config
        assert detail["loc"] == ["body", "notification"], detail
        assert NO_PHONE.removeprefix("notification: ") in detail["msg"], detail
        kept = (await http.get(f"/tasks/{task_id}/status")).json()["config"]
        assert (kept["hour"], kept["notification"]["method"]) == (9, "email"), kept
        await http.delete(f"/tasks/{task_id}")


async def test_mcp_refuses_a_threshold_beside_other_conditions_by_name(app: AppState) -> None:
    async with mcp(app) as client:
        error = await error_of(
            client,
            "create_threshold_watch",
            config={"source": SOURCE, "threshold": 100, "conditions": [BELOW_5]},
        )
        assert "threshold: 100 is shorthand" in error and "not both" in error
        assert (await call(client, "list_tasks"))["tasks"] == []


async def test_mcp_refuses_a_named_metric_beside_another_source_by_name(app: AppState) -> None:
    async with mcp(app) as client:
        error = await error_of(
            client,
            "create_threshold_watch",
            config={"metric": "bitcoin_price", "source": SOURCE, "threshold": 1},
        )
        assert "metric: 'bitcoin_price' is a named metric with its own source" in error
        assert (await call(client, "list_tasks"))["tasks"] == []


async def test_mcp_refuses_a_misspelled_target_field_by_name(app: AppState) -> None:
    async with mcp(app) as client:
        error = await error_of(
            client,
            "create_web_monitor",
            config={**WEB, "targets": [{"type": "webhook", "taget": "https://example.com/h"}]},
        )
        assert "targets.0.taget: not a field here: did you mean target? (fields: " in error
        assert (await call(client, "list_tasks"))["tasks"] == []


async def test_mcp_refuses_a_briefing_news_page_the_guard_refuses(app: AppState) -> None:
    async with mcp(app) as client:
        error = await error_of(client, "create_daily_briefing", news_urls=[METADATA_PAGE])
        assert "news_urls.0: refused destination 169.254.169.254" in error
        assert (await call(client, "list_tasks"))["tasks"] == []


async def test_the_service_checks_aimed_urls_for_every_door_the_web_form_included(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    # The web form and voice call TaskService without the MCP/API/CLI door check.
    service = TaskService(
        dev_env.client,
        deps.settings,
        deps.db,
        briefings=BriefingService(dev_env.client, deps.settings, deps.db),
    )
    await register(deps.db, "alice")
    with pytest.raises(ConfigError) as web:
        await service.create("alice", "web_monitor", {"urls": [METADATA_PAGE]})
    assert web.value.errors[0][0] == ("config", "urls", 0)
    with pytest.raises(ConfigError) as digest:
        await service.create("alice", "news_digest", {"news_urls": [METADATA_PAGE]})
    assert digest.value.errors[0][0] == ("config", "news_urls", 0)
    assert "refused destination 169.254.169.254" in str(digest.value)


async def test_api_answers_422_naming_the_field(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    async with api_over_worker(dev_env, deps) as (settings, http):
        registered = await http.post(
            "/users", json={"name": "api-config"}, headers=await admin_headers(settings)
        )
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"

        async def refusal(path: str, body: dict[str, Any]) -> tuple[list[Any], str]:
            answer = await http.post(path, json=body)
            assert answer.status_code == 422, answer.text
            detail = answer.json()["detail"][0]
            return detail["loc"], detail["msg"]

        loc, msg = await refusal(
            "/tasks",
            {
                "type": "web_monitor",
                "config": {**WEB, "notification": {"method": "email", "phone_number": "+86"}},
            },
        )
        assert loc == ["body", "config", "notification", "phone_number"] and "sms" in msg
        loc, msg = await refusal(
            "/tasks",
            {
                "type": "threshold_watch",
                "config": {
                    "source": SOURCE,
                    "threshold": 1,
                    "conditions": [{"op": "above", "value": 2}],
                },
            },
        )
        assert loc == ["body", "config"] and msg.startswith("threshold: 1 is shorthand")
        loc, msg = await refusal(
            "/tasks",
            {
                "type": "threshold_watch",
                "config": {"source": SOURCE, "threshold": 1, "on_breach": "remediate"},
            },
        )
        assert loc == ["body", "config", "on_breach"] and msg == NO_WORKLOAD_SAID, msg
        loc, msg = await refusal(
            "/tasks",
            {"type": "web_monitor", "config": {**WEB, "keyword": ["AI"]}},
        )
        assert loc == ["body", "config", "keyword"]
        assert msg.startswith("not a field here: did you mean keywords? (fields: "), msg
        loc, msg = await refusal("/briefings/daily", {"news_urls": [METADATA_PAGE]})
        assert loc == ["body", "news_urls", 0] and "refused destination" in msg
        assert (await http.get("/tasks")).json() == []
        push = await http.put(
            "/users/me/push", json={"channels": [{"type": "inbox", "kind": ["watch"]}]}
        )
        assert push.status_code == 422
        assert push.json()["detail"][0]["loc"] == ["body", "channels", 0, "kind"]
        # A name taken by another config: the refusal is about the name, and its loc says so.
        standup = {"type": "schedule", "name": "standup"}
        first = await http.post("/tasks", json={**standup, "config": {"hour": 8, "message": "a"}})
        assert first.status_code == 201, first.text
        loc, msg = await refusal("/tasks", {**standup, "config": {"hour": 9, "message": "a"}})
        assert loc == ["body", "name"] and "call update_task" in msg


def _tasks(app: AppState) -> TaskService:
    """The service the doors call, over ``app``'s worker."""
    briefings = BriefingService(app.temporal, app.settings, app.db)
    return TaskService(app.temporal, app.settings, app.db, briefings=briefings)


async def test_remediate_on_a_metric_that_names_no_deployment_is_refused_at_on_breach(
    app: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_breach "remediate" on a JSON document, a named metric or a Cloud Monitor metric of a
    CVM was created, and each breach only recorded that the metric names no TKE workload. It
    is refused at on_breach with that reason, at the service (every door's) and MCP."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "test-secret-key")
    cvm = {
        "type": "tencent_monitor",
        "namespace": "QCE/CVM",
        "metric": "CPUUsage",
        "dimensions": {"InstanceId": "ins-1"},
    }
    user = app.stdio_user
    assert user is not None
    service = _tasks(app)
    for where in ({"source": SOURCE}, {"metric": "bitcoin_price"}, {"source": cvm}):
        config = {**where, "threshold": 1, "on_breach": "remediate"}
        with pytest.raises(ConfigError) as refused:
            await service.create(user, "threshold_watch", config)
        [(at, said)] = refused.value.errors
        assert at == ("config", "on_breach") and str(said) == NO_WORKLOAD_SAID, refused.value
    async with mcp(app) as client:
        config = {"source": SOURCE, "threshold": 1, "on_breach": "remediate"}
        error = await error_of(client, "create_threshold_watch", config=config)
        assert f"on_breach: {NO_WORKLOAD_SAID}" in error, error
        assert (await call(client, "list_tasks"))["tasks"] == []
    assert await service.list(user) == []


async def test_a_watch_stored_remediating_a_metric_without_a_deployment_takes_other_updates(
    app: AppState,
) -> None:
    """A watch a release before took with on_breach "remediate" on a JSON document runs on,
    and an update of its other fields is taken; one that sets its source again (or sends a
    whole config with another) is refused at on_breach; "notify" is taken."""
    user = app.stdio_user
    assert user is not None
    service = _tasks(app)
    made = await service.create(user, "threshold_watch", {"source": SOURCE, "threshold": 1})
    # As a release before took it: the workflow's own validator takes it as it did.
    handle = app.temporal.get_workflow_handle(made.task_id)
    stored = (await service.get(user, made.task_id)).config | {"on_breach": "remediate"}
    await handle.execute_update("update_config", stored)
    updated = await service.update(user, made.task_id, {"check_interval_minutes": 30})
    assert updated.config["on_breach"] == "remediate"
    assert updated.config["check_interval_minutes"] == 30
    whole = updated.config | {"check_interval_minutes": 45}
    replaced = await service.update(user, made.task_id, whole, replace=True)
    assert replaced.config["check_interval_minutes"] == 45
    other = {**SOURCE, "json_path": "$.w"}
    for change, replace in (({"source": other}, False), (whole | {"source": other}, True)):
        with pytest.raises(ConfigError) as refused:
            await service.update(user, made.task_id, change, replace=replace)
        [(at, said)] = refused.value.errors
        assert at == ("config", "on_breach") and str(said) == NO_WORKLOAD_SAID, refused.value
    assert (await service.get(user, made.task_id)).config["source"] == SOURCE
    notify = await service.update(user, made.task_id, {"on_breach": "notify", "source": other})
    assert (notify.config["on_breach"], notify.config["source"]) == ("notify", other)
    await service.delete(user, made.task_id)


async def test_a_stored_remediating_watch_replaced_while_its_worker_is_silent_hears_that(
    app: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole config sent for a watch a release before took remediating a JSON document,
    while its config in force cannot be read (its worker silent): "nothing sent", as before
    the on_breach rule, not a refusal at on_breach of what the watch already has."""
    user = app.stdio_user
    assert user is not None
    service = _tasks(app)
    made = await service.create(user, "threshold_watch", {"source": SOURCE, "threshold": 1})
    handle = app.temporal.get_workflow_handle(made.task_id)
    stored = (await service.get(user, made.task_id)).config | {"on_breach": "remediate"}
    await handle.execute_update("update_config", stored)

    async def silent(*_: Any, **__: Any) -> Any:
        raise WorkerSilentError(f"the worker of task {made.task_id!r} did not answer in time")

    monkeypatch.setattr(service, "get", silent)
    with pytest.raises(WorkerSilentError) as unread:
        await service.update(user, made.task_id, stored, replace=True)
    assert unread.value.sent is False, unread.value
    monkeypatch.undo()
    assert (await service.get(user, made.task_id)).config["on_breach"] == "remediate"
    await service.delete(user, made.task_id)


TKE_WORKLOAD = {
    "type": "tencent_monitor",
    "namespace": "QCE/TKE2",
    "metric": "K8sWorkloadRateCpuCoreUsedCluster",
    "dimensions": {
        "tke_cluster_instance_id": "cls-perm0001",
        "namespace": "prod",
        "workload_name": "checkout",
    },
}
MAY_NOT_REMEDIATE = (
    "a breach's remediation runs with your rollback_permission, which is 'none': an admin "
    "must grant dry_run or execute (or use on_breach 'notify')"
)


async def _permission(app: AppState, user: str, permission: str) -> None:
    """``user``'s rollback_permission, as an admin grants it."""
    async with app.db.session() as session:
        account = await UserRepository(session).get(user)
        assert account is not None
        account.rollback_permission = permission
        await session.commit()


async def test_remediate_by_an_owner_who_may_not_remediate_is_refused_at_every_door(
    app: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member with rollback_permission none created a watch that remediates its workload's
    breaches: each breach said "remediation started" of a run refused at once. The create is
    refused at on_breach (the service's rule: MCP, the API, the CLI and the pages alike), and
    so is an update that keeps "remediate" after the permission was taken away."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "test-secret-key")
    user = app.stdio_user
    assert user is not None
    service = _tasks(app)
    config = {"source": TKE_WORKLOAD, "threshold": 90, "on_breach": "remediate"}
    await _permission(app, user, "none")
    with pytest.raises(ConfigError) as refused:
        await service.create(user, "threshold_watch", config)
    [(at, said)] = refused.value.errors
    assert at == ("config", "on_breach") and str(said) == MAY_NOT_REMEDIATE
    async with mcp(app) as client:
        error = await error_of(client, "create_threshold_watch", config=config)
        assert f"on_breach: {MAY_NOT_REMEDIATE}" in error, error
        assert (await call(client, "list_tasks"))["tasks"] == []
    # Created while the owner could (a dry run), then taken away by an admin.
    await _permission(app, user, "dry_run")
    made = await service.create(user, "threshold_watch", config)
    await _permission(app, user, "none")
    for change in ({"threshold": 95}, {"on_breach": "remediate"}):
        with pytest.raises(ConfigError) as refused:
            await service.update(user, made.task_id, change)
        [(at, said)] = refused.value.errors
        assert at == ("config", "on_breach") and str(said) == MAY_NOT_REMEDIATE
    kept = (await service.get(user, made.task_id)).config
    assert (kept["on_breach"], kept["conditions"]) == ("remediate", [{"op": "above", "value": 90}])
    notify = await service.update(user, made.task_id, {"on_breach": "notify", "threshold": 95})
    assert notify.config["on_breach"] == "notify"
    await service.delete(user, made.task_id)


async def test_api_refuses_remediate_for_an_owner_who_may_not_remediate_at_on_breach(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "test-secret-key")
    async with api_over_worker(dev_env, deps) as (settings, http):
        registered = await http.post(
            "/users",
            json={"name": "api-none", "rollback_permission": "none"},
            headers=await admin_headers(settings),
        )
        assert registered.status_code == 201, registered.text
        http.headers["Authorization"] = f"Bearer {registered.json()['token']}"
        config = {"source": TKE_WORKLOAD, "threshold": 90, "on_breach": "remediate"}
        answer = await http.post("/tasks", json={"type": "threshold_watch", "config": config})
        assert answer.status_code == 422, answer.text
        [detail] = answer.json()["detail"]
        assert detail["loc"] == ["body", "config", "on_breach"]
        assert detail["msg"] == MAY_NOT_REMEDIATE
        assert (await http.get("/tasks")).json() == []


async def test_mcp_refuses_a_cloud_monitor_metric_without_tencent_cloud_keys(
    app: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Accepted, the watch failed every check with "Tencent Cloud is not configured".
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/CVM",
        "metric": "CPUUsage",
        "dimensions": {"InstanceId": "ins-1"},
    }
    async with mcp(app) as client:
        error = await error_of(
            client, "create_threshold_watch", config={"source": source, "threshold": 90}
        )
        assert "source: Tencent Cloud is not configured" in error
        assert "TENCENTCLOUD_SECRET_ID" in error
        assert (await call(client, "list_tasks"))["tasks"] == []


async def test_a_bad_config_for_an_update_is_said_with_temporal_unreachable(
    deps: WorkerDeps,
) -> None:
    # The look for a missing task before its config answered "Temporal is unreachable" instead.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = deps.settings.model_copy(update={"temporal_address": closed})
    client = await temporal.connect(settings, lazy=True)
    briefings = BriefingService(client, settings, deps.db)
    service = TaskService(client, settings, deps.db, briefings=briefings)
    user = unique("down")
    await register(deps.db, user)
    for task, bad, field in (
        (f"web-monitor/{user}/pages", {"urls": ["not a url"]}, ("config", "urls", 0)),
        (f"reminder/{user}/tea", {"hour": 99, "message": "x"}, ("config", "hour")),
    ):
        with pytest.raises(ConfigError) as refused:
            await service.update(user, task, bad)
        assert refused.value.errors[0][0] == field, refused.value


INTRANET = "intranet.corp.example"


@pytest.fixture
def intranet_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver's answer for one name, an internal address (no DNS server here serves
    one); every other name is looked up for real."""
    from ambient.clients import guard

    real = guard._lookup

    def lookup(host: str, port: int) -> list[str]:
        return ["10.20.0.7"] if host == INTRANET else real(host, port)

    monkeypatch.setattr(guard, "_lookup", lookup)


async def test_a_name_that_resolves_to_an_internal_address_is_refused_at_every_door(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, intranet_name: None
) -> None:
    """A web watch of a name resolving to a private address was created and failed every
    check ("refused destination"), while its literal address was refused at once (a review).
    It is refused by field as the literal is, at the service (the web form's and voice's door),
    MCP and the API; a name that does not resolve now is still taken (its checks say so)."""
    page = f"https://{INTRANET}/status"
    service = TaskService(
        dev_env.client,
        deps.settings,
        deps.db,
        briefings=BriefingService(dev_env.client, deps.settings, deps.db),
    )
    await register(deps.db, "ina")
    with pytest.raises(ConfigError) as web:
        await service.create("ina", "web_monitor", {"urls": ["https://example.com/", page]})
    assert web.value.errors[0][0] == ("config", "urls", 1)
    said = f"refused destination {INTRANET}: it resolves to 10.20.0.7, which is a private address"
    assert said in str(web.value)
    with pytest.raises(ConfigError) as threshold:
        threshold_config = {"source": {**SOURCE, "url": page}, "conditions": [BELOW_5]}
        await service.create("ina", "threshold_watch", threshold_config)
    assert threshold.value.errors[0][0] == ("config", "source", "url")
    async with api_over_worker(dev_env, deps) as (settings, http):
        made = await http.post(
            "/users", json={"name": "inb"}, headers=await admin_headers(settings)
        )
        http.headers["Authorization"] = f"Bearer {made.json()['token']}"
        refused = await http.post(
            "/tasks", json={"type": "web_monitor", "config": {"urls": [page]}}
        )
        assert refused.status_code == 422, refused.text
        [detail] = refused.json()["detail"]
        assert detail["loc"] == ["body", "config", "urls", 0] and said in detail["msg"]
        news = await http.post("/briefings/daily", json={"news_urls": [page]})
        assert news.status_code == 422, news.text
        assert news.json()["detail"][0]["loc"] == ["body", "news_urls", 0]
        assert (await http.get("/tasks")).json() == []
        unresolved = {"urls": ["https://no-such-host.invalid/"]}
        taken = await http.post("/tasks", json={"type": "web_monitor", "config": unresolved})
        assert taken.status_code == 201, taken.text
        await http.delete(f"/tasks/{taken.json()['task_id']}")


async def test_mcp_refuses_a_watch_of_a_name_that_resolves_to_an_internal_address(
    app: AppState, intranet_name: None
) -> None:
    async with mcp(app) as client:
        error = await error_of(
            client, "create_web_monitor", config={"urls": [f"http://{INTRANET}:8080/"]}
        )
        assert f"urls.0: refused destination {INTRANET}: it resolves to 10.20.0.7" in error
        assert (await call(client, "list_tasks"))["tasks"] == []
