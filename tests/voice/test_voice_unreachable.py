"""Voice tools when Temporal or the database does not answer: a sentence that says which, never
an exception's class name."""

from __future__ import annotations

import asyncio
import json

import pytest
from mcp import Client
from temporalio.client import Client as TemporalClient
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from tencentcloud.common.credential import Credential

from ambient import temporal
from ambient.briefing.service import BriefingService
from ambient.clients.tencent.client import LIST_READS, TencentCloud
from ambient.deps import WorkerDeps
from ambient.domain.users import Language, UserCreate
from ambient.storage import Database
from ambient.storage.users import UserRepository
from ambient.wiring import AppState, StateHolder
from mcp_server import voice_answer
from mcp_server import voice_sentences as sentences
from mcp_server.voice import build_voice_server
from mcp_server.voice_answer import CALL_BUDGET
from tests.briefing.harness import make_user
from tests.conftest import unique
from tests.standins.tencent_api import SECRET_ID, SECRET_KEY, TencentApi
from tests.support.mcp_as import mcp_as
from tests.support.servers import HANG, free_port, serve
from tests.support.tencent import standin_tencent
from tests.voice.support import say, voice_client, voice_without_temporal

TEMPORAL_DOWN = "后台的 Temporal 服务连不上，现在查不到也改不了任务。请检查它是否在运行。"
DATABASE_DOWN = "数据库连不上，现在什么都查不到。请检查它是否在运行。"
# Each needs Temporal (and the first three the database) to answer.
CALLS = [
    ("greet", {}),
    ("what_needs_me", {}),
    ("task_status", {"name": "backup"}),
    ("pause_task", {"name": "backup"}),
    ("approve_remediation", {"which": "checkout"}),
]


async def test_a_temporal_that_is_down_is_said_as_such(deps: WorkerDeps) -> None:
    user = unique("vd")
    await make_user(deps.db, user)
    async with voice_without_temporal(deps, user) as voice:
        for tool, args in CALLS:
            answer = await say(voice, tool, **args)
            assert answer == TEMPORAL_DOWN, (tool, answer)


async def test_a_database_that_is_down_is_said_as_such(deps: WorkerDeps) -> None:
    url = f"postgresql+asyncpg://ambient:secret@127.0.0.1:{free_port()}/ambient"
    settings = deps.settings.model_copy(update={"database_url": url})
    db = Database(url)
    client = await temporal.connect(settings, lazy=True)
    state = AppState(
        settings=settings, db=db, temporal=client, channels=deps.channels, stdio_user="vd"
    )
    try:
        async with Client(build_voice_server(settings, holder=StateHolder(state))) as voice:
            for tool, args in [*CALLS, ("recent_errors", {})]:
                answer = await say(voice, tool, **args)
                assert answer == DATABASE_DOWN, (tool, answer)
    finally:
        await db.close()


@pytest.mark.usefixtures("product_voice_budget")
async def test_a_database_that_never_answers_is_said_within_the_voice_budget(
    deps: WorkerDeps,
) -> None:
    """A PostgreSQL behind a dead path accepts nothing and refuses nothing: who is speaking
    is read from it first, and that read was outside the call's budget (asyncpg gives up
    after 60 s, xiaozhi.me after 10); now inside it, and the connect gives up within it."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"postgresql+asyncpg://ambient:secret@127.0.0.1:{port}/ambient"
    settings = deps.settings.model_copy(update={"database_url": url})
    db = Database(url)
    client = await temporal.connect(settings, lazy=True)
    state = AppState(
        settings=settings, db=db, temporal=client, channels=deps.channels, stdio_user="vd"
    )
    try:
        async with Client(build_voice_server(settings, holder=StateHolder(state))) as voice:
            answer = await asyncio.wait_for(say(voice, "recent_errors"), CALL_BUDGET + 2)
        # The connect gives up within the budget (CONNECT_TIMEOUT): the database is named.
        assert answer == DATABASE_DOWN
    finally:
        for writer in held:
            writer.close()
        server.close()
        await db.close()


async def test_a_temporal_refusal_is_said_in_chinese_not_as_its_english_message(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A namespace Temporal does not have (AMBIENT_TEMPORAL_NAMESPACE mistyped): task_status was
    answered "出了点问题，没有完成。Namespace no-such-namespace is not found." to a Chinese
    listener. The message stays in the log; the listener hears Temporal is not set up."""
    user = unique("vn")
    await make_user(deps.db, user)
    client = TemporalClient(dev_env.client.service_client, namespace="no-such-namespace")
    async with mcp_as(deps, user, temporal=client, voice=True) as voice:
        for tool, args in [*CALLS, ("resume_task", {"name": "backup"})]:
            answer = await say(voice, tool, **args)
            assert answer == sentences.TEMPORAL_NOT_SET_UP, (tool, answer)


@pytest.mark.usefixtures("product_voice_budget")
async def test_a_tencent_cloud_that_never_answers_is_said_as_such_within_the_voice_budget(
    deps: WorkerDeps,
) -> None:
    """An endpoint behind a dead path (a firewall that drops, a proxy that hangs) accepts and
    never answers: the SDK waits 30 s for it, the call's budget ran out first and cluster_health
    said "系统这会儿响应太慢" as if this system were slow. Now Tencent Cloud is named, in time."""
    answer = await _clusters_of_a_silent_tencent(deps)
    assert answer == "腾讯云没有及时回应，看不到集群状况，请稍后再问。"


async def test_a_budget_spent_before_tencent_cloud_is_asked_is_said_as_this_system_slow(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call's budget went on this system's own work before the clusters' read (who
    speaks, a bridge's endpoint check): the read's wait had no time left, and Tencent Cloud,
    never waited for, was named as the one that did not answer."""
    monkeypatch.setattr(voice_answer, "CALL_BUDGET", voice_answer.SAY_MARGIN + 0.3)
    answer = await _clusters_of_a_silent_tencent(deps)
    assert answer == "系统这会儿响应太慢，我没等到结果，请稍后再问。"


async def _clusters_of_a_silent_tencent(deps: WorkerDeps) -> str:
    """What cluster_health says of a Tencent Cloud endpoint that accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    user = unique("vt")
    await make_user(deps.db, user)
    client = await temporal.connect(deps.settings, lazy=True)
    state = AppState(
        settings=deps.settings,
        db=deps.db,
        temporal=client,
        channels=deps.channels,
        # The product's own request timeout (TencentCloud's default), not a test's short one.
        tencent=TencentCloud(
            Credential(SECRET_ID, SECRET_KEY),
            region="ap-guangzhou",
            endpoint=f"127.0.0.1:{port}",
            protocol="http",
        ),
    )
    try:
        async with voice_client(state, user) as voice:
            return await asyncio.wait_for(say(voice, "cluster_health"), CALL_BUDGET + 2)
    finally:
        # The SDK's thread still waits on the socket: closed, it gives up at once.
        for writer in held:
            writer.close()
        server.close()


async def test_a_failure_of_no_known_kind_is_said_to_an_english_listener_without_its_message(
    deps: WorkerDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An English listener heard "Something went wrong." followed by the exception's own
    message, which names hosts, URLs or tokens. Now they hear that it failed and that the
    reason is in the server's log, which keeps it."""
    user = unique("ve")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user, language=Language.EN))
        await session.commit()
    leaky = "connect to 10.0.3.7:7233 failed (https://internal.example/api?token=amb_s3cret)"

    async def fails(*_args: object, **_kwargs: object) -> None:
        raise RPCError(leaky, RPCStatusCode.INTERNAL, b"")

    monkeypatch.setattr(BriefingService, "greet", fails)
    client = await temporal.connect(deps.settings, lazy=True)
    state = AppState(settings=deps.settings, db=deps.db, temporal=client, channels=deps.channels)
    async with voice_client(state, user) as voice:
        answer = await say(voice, "greet")
    assert answer == "Something went wrong and it was not done. The reason is in the server's log."


async def test_recent_errors_of_unnamed_tasks_are_said_with_temporal_down(deps: WorkerDeps) -> None:
    """Errors are read from the database: an unnamed task's are said by its kind when the
    labels the task lists give it cannot be read."""
    from ambient.storage.repositories import EventRepository

    user = unique("vd")
    await make_user(deps.db, user)
    async with deps.db.session() as session:
        await EventRepository(session).add(
            "watch.failing",
            user=user,
            task=f"web-monitor/{user}/0123456789ab",
            payload={"url": "https://shop.example/", "error": "HTTP 404", "failures": 1},
        )
        await session.commit()
    async with voice_without_temporal(deps, user) as voice:
        answer = await say(voice, "recent_errors")
    assert answer == "最近 24 小时有 1 个错误，来自 网页监控。", answer


async def test_unnamed_tasks_errors_are_said_apart_by_count_when_temporal_refuses_the_list(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Two unnamed web monitors' errors, their labels not readable (a Temporal that refuses:
    a namespace it does not have, a wrong API key): recent_errors answered "出了点问题" where it
    read the errors from the database, and, with the labels timed out, "主要是：网页监控 2 次"
    said one watch (and others). Now they are said by kind, with how many."""
    from ambient.storage.repositories import EventRepository

    user = unique("vr")
    await make_user(deps.db, user)
    async with deps.db.session() as session:
        for task in ("0123456789ab", "ba9876543210"):
            await EventRepository(session).add(
                "watch.failing",
                user=user,
                task=f"web-monitor/{user}/{task}",
                payload={"url": "https://shop.example/", "error": "HTTP 404", "failures": 1},
            )
        await session.commit()
    client = TemporalClient(dev_env.client.service_client, namespace="no-such-namespace")
    async with mcp_as(deps, user, temporal=client, voice=True) as voice:
        answer = await say(voice, "recent_errors")
    assert answer == "最近 24 小时有 2 个错误，都来自 网页监控（2 个）。", answer


def test_failing_watches_said_alike_are_named_once_with_how_many() -> None:
    from mcp_server.voice_needs import _failing_said

    zh, _ = _failing_said(["网页监控", "网页监控", "backup"], 3)
    assert zh == "3 个监控一直检查失败：网页监控（2 个）、backup"


@pytest.mark.usefixtures("product_voice_budget")
async def test_a_cluster_list_tke_gives_after_the_voice_stopped_waiting_is_said_when_asked_again(
    deps: WorkerDeps,
) -> None:
    """TKE answering every DescribeClusters later than a voice call waits: the call said "请稍后再
    问" and dropped the read as it stopped waiting, so asking again sent a new read, as slow,
    and was told the same, for good. The read goes on alone: asked again, its answer is said
    (a later call waits for the read under way, not one of its own)."""
    user = unique("vs")
    await make_user(deps.db, user)
    running = {"ClusterId": "cls-aaaa1111", "ClusterName": "prod", "ClusterStatus": "Running"}
    api = TencentApi(clusters=[running])
    first, later = (asyncio.Event(), asyncio.Event()), (asyncio.Event(), asyncio.Event())
    api.held["DescribeClusters"] = first
    client = await temporal.connect(deps.settings, lazy=True)
    state = AppState(settings=deps.settings, db=deps.db, temporal=client, channels=deps.channels)
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        try:
            async with voice_client(state, user) as voice:
                late = await say(voice, "cluster_health")
                assert late == "腾讯云没有及时回应，看不到集群状况，请稍后再问。"
                assert first[0].is_set()  # the read reached TKE, which answers it only now
                # Every read from now on is as slow as the first: its answer never comes in time.
                api.held["DescribeClusters"] = later
                asked_again = asyncio.create_task(say(voice, "cluster_health"))
                first[1].set()
                assert await asyncio.wait_for(asked_again, HANG) == "唯一的集群在正常运行。"
            asked = [action for _, action, _ in api.calls if action == "DescribeClusters"]
            assert asked == ["DescribeClusters"]
        finally:  # the stand-in's held requests let go before it stops
            for _, released in (first, later):
                released.set()


@pytest.mark.parametrize(
    ("language", "said"),
    [
        (
            Language.ZH,
            f"腾讯云的集群列表在读的时候一直在变，连读{LIST_READS}次都没读完整。请过一会儿再问。",
        ),
        (
            Language.EN,
            f"Tencent Cloud's cluster list kept changing while I read it, {LIST_READS} times"
            " over. Please ask again in a moment.",
        ),
    ],
    ids=["zh", "en"],
)
async def test_a_cluster_list_that_changes_at_each_read_is_said_so_not_as_tencent_unreachable(
    deps: WorkerDeps, language: Language, said: str
) -> None:
    """A cluster leaving TKE's list while each of its three reads paged (ListChanged): Tencent
    Cloud answered every page, and cluster_health said "暂时连不上腾讯云" / "I can't reach
    Tencent Cloud right now", which sends the user to check a network that works."""
    user = unique("vl")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user, language=language))
        await session.commit()
    rows = [
        {"ClusterId": f"cls-{n:08d}", "ClusterName": f"c{n}", "ClusterStatus": "Running"}
        for n in range(150)
    ]

    def page(payload: dict[str, object]) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps({"Response": payload}).encode()

    api = TencentApi()
    # A cluster leaves at each read, another by the next: each read answers otherwise (a list
    # answered alike at each read is the way to the API's fault, not a change).
    api.raw["DescribeClusters"] = [
        answer
        for r in range(LIST_READS)
        for answer in (
            page({"Clusters": rows[r : r + 100], "TotalCount": 150 - r}),
            page({"Clusters": rows[r + 101 : 150], "TotalCount": 149 - r}),
        )
    ]
    client = await temporal.connect(deps.settings, lazy=True)
    state = AppState(settings=deps.settings, db=deps.db, temporal=client, channels=deps.channels)
    async with serve(api.app()) as base:
        state.tencent = standin_tencent(base)
        async with voice_client(state, user) as voice:
            answer = await say(voice, "cluster_health")
    assert answer == said
    # Each read from its first page (the stand-in answers in order whatever is asked).
    asked = [(action, params.get("Offset")) for _, action, params in api.calls]
    assert asked == [("DescribeClusters", 0), ("DescribeClusters", 100)] * LIST_READS


class _Cut:
    """A TCP path to ``target`` on loopback that can be cut: its listener closed and every
    connection through it dropped, as a Temporal server that died does to a client that had
    connected."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.port = int(port)
        self.links: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", free_port())
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.links |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for link in self.links:
            link.transport.abort()
        await self.server.wait_closed()


@pytest.mark.usefixtures("product_voice_budget")
async def test_a_temporal_that_died_after_connecting_is_said_as_down_not_slow(
    deps: WorkerDeps, dev_env: WorkflowEnvironment
) -> None:
    """Temporal killed under a running stack: every voice answer waited out its budget and
    said "系统这会儿响应太慢…请稍后再问" (the client had connected, so its calls retried
    until the time was spent), where a client that never connected was told Temporal is down.
    An answer out of time asks Temporal once more, a moment, and says it is down."""
    user = unique("vk")
    await make_user(deps.db, user)
    path = _Cut(dev_env.client.service_client.config.target_host)
    address = await path.start()
    settings = deps.settings.model_copy(update={"temporal_address": address})
    client = await temporal.connect(settings)
    async with mcp_as(deps, user, temporal=client, settings=settings, voice=True) as voice:
        before = await say(voice, "what_needs_me")
        assert before != TEMPORAL_DOWN, before
        await path.cut()
        after = {tool: await say(voice, tool, **args) for tool, args in CALLS}
    assert after == dict.fromkeys(after, TEMPORAL_DOWN), after
