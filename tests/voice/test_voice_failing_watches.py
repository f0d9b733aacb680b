"""What needs me tells the user's watches that are failing now, not "all is well"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.domain.users import Language
from ambient.speech import MAX_SPOKEN
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.repositories import EventRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.briefing.harness import make_user
from tests.conftest import running_worker, unique
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.remediation.support import add_user, remediation_settings, run_row
from tests.support.mcp_as import mcp_as
from tests.support.servers import serve
from tests.support.waits import eventually
from tests.voice.support import fix_summary, say, task_lists_counted, voice_client, worker_state
from tests.voice.test_voice_remediation import OWNER, waiting
from tests.watches.site import Site, article

ALL_WELL = "现在没有需要你处理的事，一切正常。"
# No task left (the last one deleted): nothing looks, so "all is well" is not known.
NOTHING_WATCHED = "现在没有需要你处理的事，不过你还没有任务在看着。"


async def _kinds(db: Database, task: str) -> list[str]:
    async with db.session() as session:
        return [e.kind for e in reversed(await EventRepository(session).list(task=task))]


def _told(db: Database, task: str, kind: str, times: int) -> Callable[[], Any]:
    async def seen() -> bool:
        return (await _kinds(db, task)).count(kind) >= times

    return seen


async def _at_least(read: Callable[[], Any], n: int) -> bool:
    return bool(await read() >= n)


async def test_a_web_monitor_whose_page_cannot_be_reached_is_told_until_it_recovers_or_is_deleted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A web monitor's page answered 404 (watch.failing recorded, its status failing), and
    "有什么需要我处理的吗？" was answered "现在没有需要你处理的事，一切正常。": only the
    remediations were looked at."""
    user = unique("vf")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": [f"{base}/shop"], "failure_threshold": 1}  # /shop: 404 for now
        ref = await state.tasks.create(user, "web_monitor", config, name="shop-home")
        task = ref.task_id
        await eventually(_told(deps.db, task, "watch.failing", 1))
        failing = "没有等你审批的修复，但有 1 个监控一直检查失败：shop home。"
        async with voice_client(state, user) as client:
            assert await say(client, "what_needs_me") == failing

            site.pages["/shop"] = article("Open again.")
            await state.tasks.trigger(user, task)
            await eventually(_told(deps.db, task, "watch.recovered", 1))
            assert await say(client, "what_needs_me") == ALL_WELL

            site.pages.pop("/shop")
            await state.tasks.trigger(user, task)
            await eventually(_told(deps.db, task, "watch.failing", 2))
            assert await say(client, "what_needs_me") == failing

            await state.tasks.delete(user, task)
            await eventually(_told(deps.db, task, "watch.stopped", 1))
            assert await say(client, "what_needs_me") == NOTHING_WATCHED
    assert await _kinds(deps.db, task) == [
        "watch.failing",
        "watch.recovered",
        "watch.failing",
        "watch.stopped",
    ]


async def test_only_the_users_own_watches_failing_now_are_told_at_most_three_by_name(
    database_url: str, dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Each page of a web monitor and each threshold watch is failing from its watch.failing
    to its watch.recovered; a task stopped since (deleted) is not, nor a paused one, nor
    another user's."""
    await upgrade_async(database_url)
    db = Database(database_url)
    try:
        user, other = unique("vf"), unique("vo")
        for name in (user, other):
            await make_user(db, name)
        shop, docs, blog, old, again = (
            f"web-monitor/{user}/{name}"
            for name in ("shop-home", "docs", "blog", "old-page", "again")
        )
        btc, held = f"threshold-watch/{user}/btc", f"web-monitor/{user}/held"
        page = "https://shop.example/"
        async with db.session() as session:
            events = EventRepository(session)
            for kind, task, payload in (
                ("watch.failing", shop, {"url": page, "error": "HTTP 404", "failures": 3}),
                ("watch.failing", docs, {"url": f"{page}a", "error": "timeout", "failures": 3}),
                ("watch.failing", docs, {"url": f"{page}b", "error": "timeout", "failures": 7}),
                ("watch.recovered", docs, {"url": f"{page}a", "after_failures": 4}),
                ("watch.failing", blog, {"url": page, "error": "HTTP 500", "failures": 3}),
                ("watch.recovered", blog, {"url": page, "after_failures": 3}),
                ("watch.failing", old, {"url": page, "error": "HTTP 404", "failures": 3}),
                ("watch.stopped", old, {"checks": 9}),
                # Deleted, then created again under the same name: its new life fails.
                ("watch.failing", again, {"url": page, "error": "HTTP 404", "failures": 3}),
                ("watch.paused", again, {}),  # its earlier life's pause
                ("watch.stopped", again, {"checks": 4}),
                ("watch.failing", again, {"url": page, "error": "HTTP 404", "failures": 3}),
                ("watch.failing", btc, {"error": "HTTP 500", "failures": 3}),
                # Paused by the user: not checked, so not failing its checks.
                ("watch.failing", held, {"url": page, "error": "HTTP 404", "failures": 3}),
                ("watch.paused", held, {}),
            ):
                await events.add(kind, user=user, task=task, payload=payload)
            await events.add(
                "watch.failing",
                user=other,
                task=f"web-monitor/{other}/theirs",
                payload={"url": page, "error": "HTTP 404", "failures": 3},
            )
            await session.commit()
            assert await events.failing_pages(user=user) == [
                (shop, page),
                (docs, f"{page}b"),
                (again, page),
                (btc, None),
            ]
            assert await events.failing_pages(user=user, task=docs) == [(docs, f"{page}b")]
            # How many checks failed in a row when each was told failing.
            assert [told for *_, told in await events.failing(user=user)] == [3, 7, 3, 3]
            # The watch service still settles a paused one (a page removed, a run ended).
            assert await events.failing_pages(user=user, task=held, paused=True) == [(held, page)]
        state = AppState(
            settings=deps.settings, db=db, temporal=dev_env.client, channels=deps.channels
        )
        async with voice_client(state, user) as client:
            said = await say(client, "what_needs_me")
        async with voice_client(state, other) as client:
            theirs = await say(client, "what_needs_me")
        async with db.session() as session:
            account = await UserRepository(session).get(user)
            assert account is not None
            account.language = "en"
            await session.commit()
        async with voice_client(state, user) as client:
            said_en = await say(client, "what_needs_me")
    finally:
        await db.close()
    assert said == (
        "没有等你审批的修复，但有 4 个监控一直检查失败：shop home、docs、again 等，"
        "最严重的至少连续失败了 7 次。"
    )
    assert theirs == "没有等你审批的修复，但有 1 个监控一直检查失败：theirs，至少连续失败了 3 次。"
    assert said_en == (
        "No fixes wait for your approval, but 4 watches keep failing their checks:"
        " shop home, docs, again and more, the worst at least 7 times in a row."
    )


async def test_failing_watches_are_one_more_short_sentence_after_the_fixes_waiting(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with deps.db.session() as session:
        await EventRepository(session).add(
            "watch.failing",
            user=OWNER,
            task=f"threshold-watch/{OWNER}/btc-price",
            payload={"error": "HTTP 500", "failures": 3},
        )
        await session.commit()
    async with waiting(ts_env, deps, "checkout") as (state, _):
        async with voice_client(state, OWNER) as client:
            waiting_only = await say(client, "what_needs_me")
            async with deps.db.session() as session:
                session.add(run_row("remediation/fw-1", OWNER, source="webhook", state="applying"))
                await session.commit()
            with_alerts = await say(client, "what_needs_me")
    fixes = "有 1 个修复等你审批：第一个是checkout 的错误率。可以说“批准第一个”。"
    assert waiting_only == f"{fixes}另有 1 个监控一直检查失败：btc price，至少连续失败了 3 次。"
    assert with_alerts == (
        f"{fixes}另有 1 个告警正在自动处理，还有 1 个监控一直检查失败：btc price，"
        "至少连续失败了 3 次。"
    )


async def test_a_read_only_voice_server_says_approvals_are_made_on_the_web_page(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Through each voice server's own tool call: the read-only one has no approve tool, so its
    what_needs_me says where to approve; the full one, asked next, says "批准第一个" again."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with waiting(ts_env, deps, "checkout") as (state, _):
        async with mcp_as(state, OWNER, voice=True, read_only=True) as reader:
            read_only = await say(reader, "what_needs_me")
        async with voice_client(state, OWNER) as client:
            full = await say(client, "what_needs_me")
    assert "批准第一个" not in read_only and "审批请在网页上做" in read_only, read_only
    assert "批准第一个" in full and "网页" not in full, full


async def test_a_failing_page_taken_out_of_a_web_monitor_by_an_update_is_no_longer_told(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The usual fix of a mistyped URL: update the monitor to the right one. Its status no
    longer shows the page, but its watch.failing was never followed by a watch.recovered."""
    user = unique("vu")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    site.pages["/shop"] = article("Open.")
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        typo = {"urls": [f"{base}/shpo", f"{base}/shop"], "failure_threshold": 1}
        task = (await state.tasks.create(user, "web_monitor", typo, name="shop-home")).task_id
        await eventually(_told(deps.db, task, "watch.failing", 1))
        async with voice_client(state, user) as client:
            assert "1 个监控一直检查失败：shop home" in await say(client, "what_needs_me")
            fixed = await state.tasks.update(
                user, task, {"urls": [f"{base}/shop"], "failure_threshold": 1}
            )
            assert list(fixed.detail["urls"]) == [f"{base}/shop"]
            assert await say(client, "what_needs_me") == ALL_WELL
            # A retried or repeated update tells nothing more.
            await state.tasks.update(user, task, {"urls": [f"{base}/shop"], "failure_threshold": 1})
        await state.tasks.delete(user, task)
        await eventually(_told(deps.db, task, "watch.stopped", 1))
    assert await _kinds(deps.db, task) == ["watch.failing", "watch.url_removed", "watch.stopped"]


async def test_the_context_a_speaker_gets_at_wake_counts_the_failing_watches(
    deps: WorkerDeps,
) -> None:
    """xiaozhi-server puts /xiaozhi/context into the voice model's prompt: it said nothing of
    a watch failing, so the model had no reason to call what_needs_me."""
    from ambient.xiaozhi_context import voice_facts

    user = unique("vc")
    await make_user(deps.db, user)
    task = f"web-monitor/{user}/shop-home"
    async with deps.db.session() as session:
        await EventRepository(session).add(
            "watch.failing",
            user=user,
            task=task,
            payload={"url": "https://shop.example/", "error": "HTTP 404", "failures": 3},
        )
        await session.commit()
        row = await UserRepository(session).get(user)
    assert row is not None
    facts = await voice_facts(deps.db, row)
    assert facts.watches_failing == 1
    assert facts.hint == "有 1 个监控一直检查失败，至少连续失败了 3 次，可调用 what_needs_me。"


async def test_a_failing_watch_whose_run_ended_otherwise_is_not_told_once_deleted(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A failing web monitor's run was terminated in the Temporal Web UI (no watch.stopped):
    what_needs_me told it as failing for good, and deleting it changed nothing (delete only
    signals a running run). Now the delete says it stopped."""
    user = unique("vt")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": [f"{base}/gone"], "failure_threshold": 1}
        task = (await state.tasks.create(user, "web_monitor", config, name="gone")).task_id
        await eventually(_told(deps.db, task, "watch.failing", 1))
        await dev_env.client.get_workflow_handle(task).terminate("by hand in the Web UI")
        async with voice_client(state, user) as client:
            assert "1 个监控一直检查失败" in await say(client, "what_needs_me")
            await state.tasks.delete(user, task)
            assert await say(client, "what_needs_me") == ALL_WELL


async def test_a_failing_watch_the_user_paused_is_not_told_until_resumed(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A failing web monitor the user paused is not checked: what_needs_me still said it
    "keeps failing its checks" and /xiaozhi/context counted it. Resumed, it is told again."""
    from ambient.xiaozhi_context import voice_facts

    user = unique("vp")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": [f"{base}/down"], "failure_threshold": 1}
        task = (await state.tasks.create(user, "web_monitor", config, name="down")).task_id
        await eventually(_told(deps.db, task, "watch.failing", 1))
        failing = "没有等你审批的修复，但有 1 个监控一直检查失败：down。"
        async with deps.db.session() as session:
            row = await UserRepository(session).get(user)
        assert row is not None
        async with voice_client(state, user) as client:
            assert await say(client, "what_needs_me") == failing

            await state.tasks.pause(user, task)
            await eventually(_told(deps.db, task, "watch.paused", 1))
            assert await say(client, "what_needs_me") == ALL_WELL
            assert (await voice_facts(deps.db, row)).watches_failing == 0

            await state.tasks.resume(user, task)
            await eventually(_told(deps.db, task, "watch.resumed", 1))
            assert await say(client, "what_needs_me") == failing
            assert (await voice_facts(deps.db, row)).watches_failing == 1
        await state.tasks.delete(user, task)
        await eventually(_told(deps.db, task, "watch.stopped", 1))


async def test_fixes_with_long_names_leave_room_for_the_alerts_and_watches_not_cut_silently(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Three fixes on workloads with long (real, 30-odd letter) names filled the 300 letters an
    answer may have: the sentence after them, the alerts and the failing watch, was cut off
    unsaid. Every count is said; the names go first."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    await add_user(deps, OWNER)
    async with deps.db.session() as session:
        row = await UserRepository(session).get(OWNER)
        assert row is not None
        row.language = Language.EN
        await EventRepository(session).add(
            "watch.failing",
            user=OWNER,
            task=f"threshold-watch/{OWNER}/btc-price",
            payload={"error": "HTTP 500", "failures": 3},
        )
        session.add(run_row("remediation/long-1", OWNER, source="webhook", state="applying"))
        await session.commit()
    workloads = (
        "payment-gateway-settlement-api",
        "checkout-order-confirmation-worker",
        "inventory-reservation-sync-service",
    )
    async with waiting(ts_env, deps, *workloads) as (state, _):
        async with voice_client(state, OWNER) as client:
            said = await say(client, "what_needs_me")
    assert len(said) <= MAX_SPOKEN, said
    assert said.startswith("3 fixes waiting for your approval: first, error rate on payment"), said
    # Two named, and the third said to be there ("and more"); how badly the watch fails is
    # what goes first when the names leave no room for it.
    assert "confirmation worker; and more. You can say approve the first one." in said, said
    assert said.endswith(
        "Plus 1 alert handled automatically, and 1 watch keeps failing its checks: btc price."
    ), said


async def test_the_status_of_a_watch_failing_its_checks_says_so_not_only_that_it_runs(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """ "网站监控怎么样？" of a web monitor whose page answered 404 at every check was answered
    "shop home正在运行，已检查 1 次。": nothing said that its checks fail."""
    user = unique("vs")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site()
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": [f"{base}/shop"], "failure_threshold": 1}  # /shop: 404 for now
        ref = await state.tasks.create(user, "web_monitor", config, name="shop-home")
        await eventually(_told(deps.db, ref.task_id, "watch.failing", 1))
        async with voice_client(state, user) as client:
            said = await say(client, "task_status", name="shop home")
            assert said.startswith("shop home正在运行，已检查 ") and said.endswith(
                "次，但最近一次没能打开网页：网页不存在。"
            ), said

            # "检查一直失败" said nothing of how many: the checks failed in a row are counted.
            async def failed_in_a_row() -> int:
                status = await state.tasks.get(user, ref.task_id)
                urls = status.detail["urls"]
                assert isinstance(urls, dict)
                return int(urls[f"{base}/shop"]["failures"])

            for times in (2, 3):
                await state.tasks.trigger(user, ref.task_id)
                await eventually(lambda n=times: _at_least(failed_in_a_row, n))
            checks = (await state.tasks.get(user, ref.task_id)).checks
            said = await say(client, "task_status", name="shop home")
            assert said == (
                f"shop home正在运行，已检查 {checks} 次，"
                "但最近连续 3 次都没能打开网页：网页不存在。"
            )
            async with deps.db.session() as session:
                account = await UserRepository(session).get(user)
                assert account is not None
                account.language = "en"
                await session.commit()
            said = await say(client, "task_status", name="shop home")
            assert said == (
                f"shop home is running, checked {checks} times, but the last 3 checks could not"
                " open the page: the page does not exist."
            )

            site.pages["/shop"] = article("Open again.")
            await state.tasks.trigger(user, ref.task_id)
            await eventually(_told(deps.db, ref.task_id, "watch.recovered", 1))
            said = await say(client, "task_status", name="shop home")
            assert said == f"shop home is running, checked {checks + 1} times.", said


def test_a_short_answer_names_the_first_fix_before_any_failing_watch() -> None:
    """Fitting 300 letters, the fixes' names went before the watches': "3 fixes waiting …
    You can say approve the first one", then three watches named, and no fix. The first fix
    keeps its name while any name is said; an answer naming none asks nobody to approve it."""

    from ambient.remediation.views import RemediationSummary
    from mcp_server.voice_answer import english
    from mcp_server.voice_needs import needs_answer

    def run(n: int, workload: str) -> RemediationSummary:
        return fix_summary(n, f"cls-1/shop/{workload}", user=OWNER)

    fixes = [
        run(1, "payment-gateway-settlement-api"),
        run(2, "checkout-order-confirmation-worker"),
        run(3, "inventory-reservation-sync-service"),
    ]
    watches = [
        "order fulfillment webhook status page monitor",
        "customer portal login page availability",
        "settlement reconciliation latency p99",
    ]
    # Set for this test only: left set, a later test in its process was said in English.
    told = english.set(True)
    try:
        said = needs_answer(fixes, [run(4, "api"), run(5, "web")], False, watches)
        long = [run(n, "x" * 400) for n in range(3)]
        unnamed = needs_answer(long, [], False, ["y" * 150])
    finally:
        english.reset(told)
    assert len(said) <= MAX_SPOKEN, said
    assert "first, error rate on payment gateway settlement api" in said, said
    assert "approve the first one" in said and "2 alerts" in said and "3 watches" in said, said
    # Nothing named at all (names far too long for any): no "first one" to approve.
    assert "3 fixes waiting" in unnamed and "first one" not in unnamed, unnamed


def test_a_threshold_watch_failing_its_reads_is_said_with_how_many_failed_in_a_row() -> None:
    """A threshold watch counts its failed reads in its status' own ``failures`` (a web monitor
    per page); a watch told failing whose status counts none is still said to fail."""
    from ambient.watches.configs import TaskKind, TaskState
    from ambient.watches.models import TaskStatus
    from mcp_server.voice_failures import failed_clause

    def status(**detail: object) -> TaskStatus:
        return TaskStatus(
            task_id="threshold-watch/u/btc",
            kind=TaskKind.THRESHOLD_WATCH,
            user="u",
            state=TaskState.ACTIVE,
            checks=9,
            config={},
            detail=detail,
        )

    failing = [("threshold-watch/u/btc", None)]
    error = "HTTP 500 from http://127.0.0.1:9/value"
    assert failed_clause(status(failures=4, last_error=error), failing) == (
        "，但最近连续 4 次都没能读到数值：网站返回了错误 500",
        ", but the last 4 checks could not read a value: the site answered error 500",
    )
    assert failed_clause(status(failures=1, last_error=error), []) == (
        "，但最近一次没能读到数值：网站返回了错误 500",
        ", but the last check could not read a value: the site answered error 500",
    )
    assert failed_clause(status(failures=4), failing) == (
        "，但检查一直失败",
        ", but its checks keep failing",
    )
    assert failed_clause(status(failures=0), []) == ("", "")


async def test_two_unnamed_failing_web_monitors_are_said_apart_as_the_task_lists_say_them(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two web monitors created without a name, each of one page that answers 404, were both
    "网页监控": "2 个监控一直检查失败：网页监控", one name for two, and their errors "网页监控
    N 次" in one. Each is said by its label as the task lists say it, numbered by creation,
    and that label said back is the task it named. The labels are read without every task
    (which took past their second with 2,000 tasks, and the labels were dropped): a named
    task, one whose name starts as an unnamed one's may, numbers none of them."""
    user = unique("vu")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site(pages={"/": article("The cafe menu of the day, as every day.")})
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        hex_named = {"urls": [f"{base}/"], "check_interval_minutes": 5}
        await state.tasks.create(user, "web_monitor", hex_named, name="cafe")
        made = []
        for path in ("/shop", "/docs"):  # both 404
            config = {"urls": [f"{base}{path}"], "failure_threshold": 1}
            made.append((await state.tasks.create(user, "web_monitor", config)).task_id)
            await eventually(_told(deps.db, made[-1], "watch.failing", 1))

        async def all_listed() -> bool:
            return len(await state.tasks.list(user)) == 3

        await eventually(all_listed, "the monitors listed")
        one, two = (f"第{n}个网页监控（1 个网址，每 5 分钟）" for n in "一二")
        listed = task_lists_counted(monkeypatch)
        async with voice_client(state, user) as client:
            said = await say(client, "what_needs_me")
            assert said == f"没有等你审批的修复，但有 2 个监控一直检查失败：{one}、{two}。", said
            # A tie is said as one: "主要是：X 1 次、Y 1 次" said mostly the first of equals.
            errors = await say(client, "recent_errors")
            assert errors == f"最近 24 小时有 2 个错误，{one}、{two}，各 1 次。", errors
            assert listed == [0]
            for label, task in ((one, made[0]), (two, made[1])):
                status = await say(client, "task_status", name=label)
                assert status.startswith(f"{label}正在运行，已检查 "), status
                await say(client, "pause_task", name=label)
                schedule_free = await state.tasks.get(user, task)
                assert schedule_free.state.value == "paused", (label, schedule_free.state)
                await say(client, "resume_task", name=label)


async def test_a_watch_whose_checks_fail_below_its_threshold_is_heard_failing_and_why(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A web monitor whose host does not resolve, its first two checks failed: task_status said
    "checkout page正在运行，已检查 2 次。", nothing of the failures. It is not failing yet (three
    in a row, its default threshold: what_needs_me still says all is well), but asked about,
    its last checks are said failed and why, in words: not the resolver's text, nor the host."""
    user = unique("vb")
    await make_user(deps.db, user)
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        config = {"urls": ["https://checkout.shop-nowhere.invalid/cart"]}
        ref = await state.tasks.create(user, "web_monitor", config, name="checkout-page")

        async def failed_in_a_row() -> int:
            urls = (await state.tasks.get(user, ref.task_id)).detail["urls"]
            assert isinstance(urls, dict)
            return int(next(iter(urls.values()), {}).get("failures", 0))

        await eventually(lambda: _at_least(failed_in_a_row, 1))
        async with voice_client(state, user) as client:
            said = await say(client, "task_status", name="checkout page")
            assert (
                said == "checkout page正在运行，已检查 1 次，但最近一次没能打开网页：域名解析失败。"
            )
            await state.tasks.trigger(user, ref.task_id)
            await eventually(lambda: _at_least(failed_in_a_row, 2))
            said = await say(client, "task_status", name="checkout page")
            assert said == (
                "checkout page正在运行，已检查 2 次，但最近连续 2 次都没能打开网页：域名解析失败。"
            )
            assert await say(client, "what_needs_me") == ALL_WELL  # two of its three
            async with deps.db.session() as session:
                account = await UserRepository(session).get(user)
                assert account is not None
                account.language = "en"
                await session.commit()
            said = await say(client, "task_status", name="checkout page")
    assert said == (
        "checkout page is running, checked 2 times, but the last 2 checks could not open the"
        " page: its domain name does not resolve."
    )


def test_a_web_monitor_with_one_page_of_several_failing_says_how_many_not_which_url() -> None:
    from ambient.watches.configs import TaskKind, TaskState
    from ambient.watches.models import TaskStatus
    from mcp_server.voice_failures import failed_clause

    long = "https://shop.example/" + "/".join(f"section-{i}" for i in range(40))
    pages = {
        long: {"last_outcome": "error", "last_error": "HTTP 404", "failures": 2},
        "https://shop.example/": {"last_outcome": "unchanged", "failures": 0},
    }
    status = TaskStatus(
        task_id="web-monitor/u/aa66b964eecc",
        kind=TaskKind.WEB_MONITOR,
        user="u",
        state=TaskState.ACTIVE,
        checks=3,
        config={},
        detail={"urls": pages, "last_error": f"{long}: HTTP 404"},
    )
    assert failed_clause(status, []) == (
        "，但 2 个网页里有 1 个最近没能打开：网页不存在",
        ", but 1 of its 2 pages could not be opened lately: the page does not exist",
    )


def test_a_failed_check_read_from_a_stale_poll_state_is_not_said() -> None:
    """A poll's page states come from its heartbeat, heard at once and then about every 0.8 of
    its window: a check that failed first was said failing for up to 48 minutes while every
    later one succeeded. A state older than 1.5 intervals is left to the failing events."""
    from datetime import UTC, datetime, timedelta

    from ambient.watches.configs import TaskKind, TaskState
    from ambient.watches.models import TaskStatus
    from mcp_server.voice_failures import failed_clause

    def status(checked_ago: timedelta, state: TaskState = TaskState.ACTIVE) -> TaskStatus:
        at = (datetime.now(UTC) - checked_ago).isoformat()
        page = {"last_outcome": "error", "last_error": "HTTP 404", "failures": 1}
        return TaskStatus(
            task_id="web-monitor/u/shop",
            kind=TaskKind.WEB_MONITOR,
            user="u",
            state=state,
            checks=5,
            config={"check_interval_minutes": 1},
            detail={"urls": {"https://shop.example/": {**page, "last_checked_at": at}}},
        )

    assert (
        failed_clause(status(timedelta(seconds=30)), [])[0]
        == "，但最近一次没能打开网页：网页不存在"
    )
    assert failed_clause(status(timedelta(minutes=30)), []) == ("", "")
    told = [("web-monitor/u/shop", "https://shop.example/")]
    assert failed_clause(status(timedelta(minutes=30)), told)[0] == "，但检查一直失败"
    # Paused, no later check ran: its last one is said, however old.
    paused = status(timedelta(minutes=30), TaskState.PAUSED)
    assert failed_clause(paused, [])[0] == "，但最近一次没能打开网页：网页不存在"


async def test_a_threshold_watch_over_its_line_is_said_not_all_is_well(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A watch over its line (its breach told), and "有什么需要我处理的吗？" was answered
    "一切正常"; asked about it, "正在运行，已检查 2 次": the breach was never said."""
    user = unique("vo")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    site = Site(values=[120])
    async with serve(site.app()) as base, running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        source = {"type": "http_json", "url": f"{base}/value", "json_path": "$.data.amount"}
        config = {"source": source, "threshold": 100}
        task = (await state.tasks.create(user, "threshold_watch", config, name="orders")).task_id
        await eventually(_told(deps.db, task, "watch.breach", 1))
        async with voice_client(state, user) as client:
            assert await say(client, "what_needs_me") == (
                "没有等你审批的修复，但有 1 个监控越过了阈值：orders。"
            )
            status = await say(client, "task_status", name="orders")
            assert "越过了阈值，最新的值是 120" in status, status

            site.values.append(50)
            await state.tasks.trigger(user, task)
            await eventually(_told(deps.db, task, "watch.recovery", 1))
            assert await say(client, "what_needs_me") == ALL_WELL
            assert "阈值" not in await say(client, "task_status", name="orders")


async def test_a_run_handed_over_to_the_user_is_said_not_all_is_well(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A run ended handed over (nobody approved in time, a manual rule) left the user's to
    do, and what_needs_me answered "Nothing needs you now. All is well." 8 s later (a
    review). A hand-over of the last day is said first; one of two days ago, or another
    user's, is not."""
    from datetime import UTC, datetime, timedelta

    user, other = unique("vh"), unique("vo")
    await make_user(deps.db, user)
    await make_user(deps.db, other)
    now = datetime.now(UTC)
    async with deps.db.session() as session:
        for rid, owner, service, ended, how in (
            ("remediation/vh-1", user, "db-primary", now - timedelta(hours=1), "handed_over"),
            ("remediation/vh-2", user, "cache", now - timedelta(days=2), "handed_over"),
            ("remediation/vh-3", other, "search", now - timedelta(hours=1), "handed_over"),
            # Its attempts spent: left to a person as well.
            ("remediation/vh-4", user, "queue", now - timedelta(hours=2), "budget_exhausted"),
        ):
            session.add(run_row(rid, owner, service=service, state=how, finished_at=ended))
        await session.commit()
    async with running_worker(dev_env.client, deps) as worker:
        state = worker_state(dev_env.client, deps, worker.task_queue)
        async with voice_client(state, user) as client:
            said = await say(client, "what_needs_me")
        async with voice_client(state, unique("vn")) as client:
            nobody = await say(client, "what_needs_me")
    assert said == "有 2 个告警自动处理没能解决，交给你了：db primary 的错误率 等。", said
    assert nobody != said and "交给你" not in nobody
    # The context 小智 reads before the user speaks says it too.
    from ambient.storage.users import user_named
    from ambient.xiaozhi_context import voice_facts

    account = await user_named(deps.db, user)
    assert account is not None
    facts = await voice_facts(deps.db, account)
    assert facts.hint == "有 2 个告警自动处理没能解决，交给了用户，可调用 what_needs_me。"


def test_a_hand_over_said_first_leaves_the_rest_of_what_needs_the_user_said() -> None:
    """Said as a sentence before what_needs_me's answer, the hand-over dropped four waiting
    approvals and four failing watches whole (too long together), or pushed the watches past
    the third sentence the voice keeps (a review). It is a clause of the first sentence now,
    and the rest is named with the room it leaves."""

    from ambient.remediation.views import RemediationSummary
    from ambient.speech import speakable
    from mcp_server.voice_needs import needs_answer, with_handed

    def run(i: int, service: str, state: str = "waiting_approval") -> RemediationSummary:
        return fix_summary(i, service, mode="dry_run", state=state, ended=True)

    handed = [run(9, "db-primary", "handed_over")]
    long_names = ["checkout-service-primary-shanghai-zone", "payments-gateway-eu-frankfurt"]
    for fixes, failing in (
        (
            [run(i, s) for i, s in enumerate([*long_names, "search-indexer", "orders"], 1)],
            ["shop home page of the main store", "billing portal", "status page", "docs site"],
        ),
        ([run(1, "checkout"), run(2, "payments")], ["shop home", "billing"]),
    ):
        said = with_handed(
            handed,
            lambda room, fixes=fixes, failing=failing: needs_answer(
                fixes, [], False, failing, reserve=room
            ),
        )
        assert said.startswith("有 1 个告警自动处理没能解决，交给你了"), said
        assert "审批" in said and "监控一直检查失败" in said, said
        assert len(said) <= MAX_SPOKEN and speakable(said) == said, said


def test_a_check_failed_by_401_or_a_sign_in_redirect_is_said_as_asking_for_credentials() -> None:
    """HTTP 401 was said "the site refused access", as 403: the site asks for credentials."""
    from ambient.clients.web_errors import SIGN_IN
    from ambient.refusals import Refusal
    from mcp_server.voice_failures import reason_said

    assert reason_said("HTTP 401") == ("网站要求先登录或提供凭据", "the site asks for credentials")
    assert reason_said("HTTP 403")[1] == "the site refused access"
    signed = str(Refusal(SIGN_IN, url="https://shop.example/login"))
    assert reason_said(signed) == ("网页要求先登录", "the page asks to sign in first")
