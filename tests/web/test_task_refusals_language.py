"""A Chinese user's task pages speak Chinese: the task service's refusals (a task poked after
it stopped, a monitor name taken by another config) and the kind of a task."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from ambient import no_answer
from ambient.briefing.errors import BriefingError
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserSettings
from ambient.remediation.views import RemediationError
from ambient.storage.users import UserRepository
from ambient.watches.inputs import TaskError, WorkerSilentError
from ambient.watches.service import TaskService
from api.i18n import Words
from api.routers.app_pages import task_problem
from api.routers.ops_pages import briefing_problem, remediation_problem
from tests.conftest import unique
from tests.support.pages import signed_in
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import USER, loopback_deps  # noqa: F401  (fixture)
from tests.web.test_refusals_language import shown_error


@pytest_asyncio.fixture
async def zh_dashboard(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,  # noqa: F811
    service: TaskService,  # noqa: F811  (the worker runs while the pages are up)
) -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard of the tasks' user, who reads Chinese, on the same task queue."""
    settings = loopback_deps.settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )
    async with loopback_deps.db.session() as session:
        users = UserRepository(session)
        user = await users.get(USER)
        assert user is not None
        await users.update(user, UserSettings(language=Language.ZH))
        token = await users.rotate_token(user)
        await session.commit()
    async with signed_in(settings, token, "/app") as http:
        yield http


async def test_a_stopped_task_poked_from_a_stale_dashboard_is_said_in_chinese(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), unique("poked"))
    await service.delete(USER, ref.task_id)
    for action in ("pause", "resume", "trigger"):
        answer = await zh_dashboard.post(
            "/app/tasks/action", data={"task_id": ref.task_id, "action": action}
        )
        assert answer.status_code == 303
        said = unquote(answer.headers["location"].partition("msg=")[2])
        assert said == f"任务 '{ref.task_id}' 已经停止；要重新开始，请再创建一次", (action, said)
    assert (await service.get(USER, ref.task_id)).state == "stopped"


async def test_a_monitor_name_taken_by_another_config_is_said_in_chinese_and_changes_nothing(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    name = unique("taken")
    ref = await service.create(USER, "web_monitor", monitor(base, "/a"), name)
    form = {"urls": f"{base}/a", "keywords": "", "interval": "30", "name": name}
    answer = await zh_dashboard.post("/app/tasks", data=form)
    assert answer.status_code == 422
    assert shown_error(answer) == (
        f"未创建：名称：任务 '{ref.task_id}' 已在用另一个配置运行；要改用这个配置，请先删除它再创建"
    )
    assert f'value="{name}"' in answer.text  # the form as it was filled in
    status = await service.get(USER, ref.task_id)
    assert status.config["check_interval_minutes"] == 60
    await service.delete(USER, ref.task_id)


async def test_a_page_listed_twice_is_said_in_chinese_and_nothing_is_created(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    # "网页: 'http://…/' is listed twice (urls[0] and urls[1]); list each page once": the one
    # refusal of this form that stayed English on a Chinese page.
    _, base = gated
    name = unique("twice")
    form = {"urls": f"{base}/a\n{base}/a", "keywords": "", "interval": "30", "name": name}
    answer = await zh_dashboard.post("/app/tasks", data=form)
    assert answer.status_code == 422
    said = shown_error(answer)
    assert said.endswith(f"'{base}/a' 列了两次（urls[0] 和 urls[1]）：每个网页只列一次"), said
    assert all(not t.task_id.endswith(name) for t in await service.list(USER))


async def test_a_chinese_users_task_page_names_the_kind_of_task_in_chinese(
    service: TaskService,  # noqa: F811
    zh_dashboard: httpx.AsyncClient,
    gated: tuple[GatedSite, str],  # noqa: F811
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    made = [
        await service.create(USER, "web_monitor", monitor(base, "/a"), unique("kind")),
        await service.create(USER, "schedule", {"hour": 9, "message": "喝水"}, unique("kind")),
    ]
    kinds = []
    for ref in made:
        page = await zh_dashboard.get("/app/task", params={"id": ref.task_id})
        kind = re.search(r"<tr><th>类型</th><td>([^<]*)</td></tr>", page.text)
        assert kind is not None, page.text
        kinds.append(kind[1])
        await service.delete(USER, ref.task_id)
    assert kinds == ["网页监控", "定时提醒"]


@pytest.mark.parametrize("busy", [False, True])
def test_a_worker_that_did_not_answer_is_said_as_such_not_as_the_feature_being_down(
    busy: bool,
) -> None:
    """A refusal because the worker did not answer in time (stopped, or too busy: a service
    raises it with the silent worker's words) was said "Tasks / Briefings / Remediations are
    unavailable right now" on the pages, as if the feature were down."""
    words = no_answer.silent_worker(busy=busy)
    task = WorkerSilentError(f"Temporal refused the request for 'w': {words}")
    briefing = BriefingError(f"Temporal refused the request: {words}")
    run = RemediationError(f"r did not answer ({words}): nothing was answered")
    for language, said in [
        (
            Language.EN,
            [
                "The task's worker did not answer in time (busy or stopped); try again in a "
                "moment.",
                "Your briefing did not answer in time (its worker is busy or stopped); try "
                "again in a moment.",
                "The run did not answer in time (its worker is busy or stopped); try again in a "
                "moment.",
            ],
        ),
        (
            Language.ZH,
            [
                "任务的 worker 没有及时应答（正忙或已停止），请稍后再试。",
                "你的简报没有及时应答（它的 worker 正忙或已停止），请稍后再试。",
                "这次修复没有及时应答（它的 worker 正忙或已停止），请稍后再试。",
            ],
        ),
    ]:
        _ = Words(language)
        assert [task_problem(task, _), briefing_problem(briefing, _)] == said[:2]
        assert remediation_problem(run, _) == said[2]
    # A worker that keeps failing the run's workflow task: trying again does not help.
    failing = no_answer.failing_worker()
    errors = [
        WorkerSilentError(f"Temporal refused the request for 'w': {failing}"),
        BriefingError(f"Temporal refused the request: {failing}"),
        RemediationError(f"r did not answer ({failing}): nothing was answered"),
    ]
    problems = (task_problem, briefing_problem, remediation_problem)
    for language, words in [
        (
            Language.EN,
            "Its worker keeps failing it (Temporal: Workflow Task in failed state); the "
            "worker's log says why. If it goes on, an operator has to mend it.",
        ),
        (
            Language.ZH,
            "它的 worker 一直在这一步上失败（Temporal：Workflow Task in failed state）；"
            "原因见 worker 的日志。如果一直这样，需要运维人员处理。",
        ),
    ]:
        said = [say(e, Words(language)) for say, e in zip(problems, errors, strict=True)]
        assert said == [words] * 3
    # Any other failure of the service is still the feature being unavailable.
    assert task_problem(TaskError("Temporal refused the request: boom"), Words(Language.EN)) == (
        "Tasks are unavailable right now; try again in a moment."
    )


def test_a_control_the_silent_worker_was_sent_says_to_check_before_asking_again() -> None:
    """A trigger sent to a busy worker (a briefing's regenerate, a web monitor's check now)
    may still run: the task page said "try again in a moment", and a second click prepared
    the briefing twice (the briefings page said to check first)."""
    words = no_answer.silent_worker(busy=True)
    sent = WorkerSilentError(f"Temporal refused the request for 'w': {words}", sent=True)
    assert task_problem(sent, Words(Language.EN)) == (
        "The task was asked and may still do it (its worker is busy or stopped); check the "
        "task before asking again."
    )
    assert task_problem(sent, Words(Language.ZH)) == (
        "已向任务发出请求，它可能仍会执行（它的 worker 正忙或已停止）；再次请求前请先查看任务。"
    )
