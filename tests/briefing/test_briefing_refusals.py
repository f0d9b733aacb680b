"""A refused briefing config names its field in the API's 422, a list item's too; the CLI
refuses what the API and MCP refuse."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from ambient.briefing.errors import InvalidBriefingError, parse_config
from ambient.briefing.service import BriefingService
from ambient.cli import app
from ambient.domain.users import UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.routers.briefings import RegenerateIn, http_error
from mcp_server.tools.briefing import RequestId
from tests.conftest import unique


def test_a_refused_list_item_is_named_in_the_422() -> None:
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config({"news_urls": ["https://example.com/", "javascript:x"]})
    assert refused.value.field == "news_urls.1"
    answer = http_error(refused.value)
    assert isinstance(answer, RequestValidationError)
    assert [error["loc"] for error in answer.errors()] == [["body", "news_urls", 1]]


def test_a_refused_field_is_named_in_the_422() -> None:
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config({"timezone": "Nowhere"})
    answer = http_error(refused.value)
    assert isinstance(answer, RequestValidationError)
    assert [error["loc"] for error in answer.errors()] == [["body", "timezone"]]


@pytest.mark.parametrize(
    "query",
    [
        "level:ERROR | select count(*) as n",
        "* |SELECT level",
        "level:ERROR|histogram(__TIMESTAMP__, interval => 1 hour)",
        'msg:"say \\"a|b\\"" | select 1',
    ],
)
def test_a_cls_source_whose_query_is_an_sql_analysis_is_refused_by_name(query: str) -> None:
    """An SQL analysis answers rows, not log lines: the briefing read none of them and said
    "0 lines read" every morning. CLS reads whatever follows the first pipe outside quotes as
    SQL, "select" or not; a pipe inside a quoted filter is no analysis."""
    source = {"type": "cls", "topic_id": "0a1b2c3d-0000-4000-8000-000000000001"}
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config({"log_source": {**source, "query": query}})
    assert refused.value.field == "log_source.cls.query"
    assert "'| select ...'" in str(refused.value)
    for search in ('msg:"a | select b"', 'msg:"a|b" AND level:ERROR'):
        kept = parse_config({"log_source": {**source, "query": search}})
        assert kept.log_source is not None


@pytest.mark.parametrize("region", ["guangzhou", "ap guangzhou", "广州"])
def test_a_cls_source_whose_region_is_no_region_name_is_refused_by_name(region: str) -> None:
    """Accepted, it failed the log read every morning ("region must be ...")."""
    source = {"type": "cls", "topic_id": "0a1b2c3d-0000-4000-8000-000000000001"}
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config({"log_source": {**source, "region": region}})
    assert refused.value.field == "log_source.cls.region"
    assert "ap-guangzhou" in str(refused.value)
    kept = parse_config({"log_source": {**source, "region": "ap-shanghai"}})
    assert kept.log_source is not None


@pytest.mark.parametrize("limit", ["0", "-1", "100000000000000000000"])
def test_listing_a_number_of_briefings_out_of_range_is_refused_by_name(
    settings: Settings, limit: str
) -> None:
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_USER": "ops"}
    result = CliRunner().invoke(app, ["briefing", "list", f"--limit={limit}"], env=env)
    assert result.exit_code == 1, result.output
    assert "limit: list 1 to 366 briefings" in result.output
    assert "OverflowError" not in result.output


# An empty request_id was taken as none given: a fresh id, so a retry acted twice (update_task
# refused it). One rule at every door: 1-128 characters.
@pytest.mark.parametrize("request_id", ["", "x" * 200])
def test_a_greeting_request_id_empty_or_too_long_is_refused_by_name(
    settings: Settings, request_id: str
) -> None:
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_USER": "ops"}
    result = CliRunner().invoke(app, ["briefing", "greet", "--request-id", request_id], env=env)
    assert result.exit_code == 1, result.output
    assert "request_id: 1-128 characters" in result.output
    assert "ValidationError" not in result.output


@pytest.mark.parametrize("request_id", ["", "x" * 200])
async def test_a_send_request_id_empty_or_too_long_is_refused_by_name_before_anything_is_read(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database, request_id: str
) -> None:
    service = BriefingService(dev_env.client, settings, db)
    with pytest.raises(InvalidBriefingError) as refused:
        await service.send("ops", "2026-01-05", request_id=request_id)
    assert refused.value.field == "request_id"
    assert str(refused.value) == "request_id: 1-128 characters"


@pytest.mark.parametrize("role", ["member", "admin"])
async def test_a_greeting_for_an_overlong_user_id_is_refused_by_name_not_said_back(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database, role: str
) -> None:
    """greet's user_id (the MCP tool takes any text, the CLI too) was said back whole: a
    20,000-character one came back as a 20 KB refusal to a member ("greeting for '...' needs
    the admin role") and 40 KB to an admin ("no user '...': ... ambient user create ...")."""
    caller = unique(role)
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name=caller, role=role))
        await session.commit()
    service = BriefingService(dev_env.client, settings, db)
    with pytest.raises(InvalidBriefingError) as refused:
        await service.greet("x" * 20_000, via="mcp", caller=caller)
    assert refused.value.field == "user_id"
    assert str(refused.value) == "user_id: at most 63 characters"


async def test_a_cls_log_source_without_tencent_cloud_keys_is_refused_at_create(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted, the briefing said "Yesterday's logs could not be read" every morning, first
    the morning after: refused now, saying what to set, as analyze_logs refuses it."""
    from ambient.briefing.errors import BriefingNotFoundError
    from ambient.clients.tencent.client import NOT_CONFIGURED
    from tests.briefing.harness import make_user

    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    await make_user(db, "cleo")
    service = BriefingService(dev_env.client, settings, db)
    source = {"type": "cls", "topic_id": "0a1b2c3d-0000-4000-8000-000000000001"}
    with pytest.raises(InvalidBriefingError) as refused:
        await service.create("cleo", {"log_source": source})
    assert refused.value.field == "log_source"
    # Worded as a watch's refusal, naming a CVM role too.
    assert NOT_CONFIGURED in str(refused.value), refused.value
    with pytest.raises(BriefingNotFoundError):  # nothing was started
        await service.status("cleo")


async def test_an_empty_log_source_option_is_refused_by_name_as_the_api_does(
    dev_env: WorkflowEnvironment, settings: Settings, db: Database
) -> None:
    """`briefing create --cls-topic ''` (an unset $TOPIC) set up a briefing with no log source
    at all, "created", exit 0, where create_daily_briefing and POST /briefings/daily refuse
    topic_id "" (min_length 1); on a briefing that had a source, it replaced it with none.
    `briefing analyze` said "give exactly one of --log-file or --cls-topic" of the one given."""
    from tests.briefing.harness import make_user

    user = unique("brief").replace("-", "")
    await make_user(db, user)
    env = {
        "AMBIENT_DATA_DIR": str(settings.data_dir),
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "AMBIENT_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "COLUMNS": "300",
    }
    window = ["--start", "2026-01-01T00:00:00+08:00", "--end", "2026-01-01T01:00:00+08:00"]
    said = {}
    for option, field in (("--cls-topic", "topic_id"), ("--log-file", "path")):
        for command in (["create"], ["analyze", *window]):
            args = ["briefing", *command, "--user", user, option, ""]
            done = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
            said[command[0], option] = (done.exit_code, field in done.output, done.output)
    assert {key: value[:2] for key, value in said.items()} == {key: (1, True) for key in said}, said
    nothing = await asyncio.to_thread(
        CliRunner().invoke, app, ["briefing", "status", "--user", user], env=env
    )
    assert nothing.exit_code == 1, nothing.output  # no briefing was set up


async def test_briefing_list_json_keeps_chinese_as_it_is(settings: Settings) -> None:
    # It alone of the CLI's --json outputs wrote a Chinese headline as \\uXXXX escapes.
    from datetime import UTC, datetime

    from ambient.storage.briefings import BriefingRepository
    from ambient.storage.migrate import upgrade_async

    await upgrade_async(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as session:
            await BriefingRepository(session).save(
                "ops",
                "2026-11-26",
                content={"headline": "昨天一切正常。", "spoken_text": "昨天一切正常。"},
                report_markdown="# 每日简报",
                generated_by="offline",
                prepared_at=datetime.now(UTC),
            )
            await session.commit()
    finally:
        await db.close()
    env = {"AMBIENT_DATA_DIR": str(settings.data_dir), "AMBIENT_USER": "ops"}
    listing = ["briefing", "list", "--json"]
    result = await asyncio.to_thread(CliRunner().invoke, app, listing, env=env)
    assert result.exit_code == 0, result.output
    assert "昨天一切正常。" in result.output and "\\u" not in result.output, result.output


@pytest.mark.parametrize(
    ("config", "field"),
    [
        # A page twice was checked twice; "re:[" made every changed page "unavailable";
        # " " made every new line a hit: refused as a news digest refuses them.
        ({"news_urls": ["https://EXAMPLE.com", "https://example.com/"]}, "news_urls"),
        ({"news_urls": ["https://example.com/"], "categories": ["re:["]}, "categories.0"),
        ({"news_urls": ["https://example.com/"], "categories": [" "]}, "categories.0"),
    ],
)
def test_news_pages_and_categories_are_checked_as_a_news_digests(
    config: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config(config)
    assert refused.value.field == field


def test_a_stored_briefing_with_news_a_digest_refuses_keeps_running() -> None:
    from ambient.briefing.config import BriefingConfig
    from ambient.domain.configs import read_stored

    stored = {"news_urls": ["https://example.com/", "https://example.com"], "categories": [" "]}
    config = read_stored(BriefingConfig, stored)
    assert [str(u) for u in config.news_urls] == ["https://example.com/"] * 2
    assert config.categories == [" "]


@pytest.mark.parametrize("request_id", ["", "x" * 129])
def test_a_regenerate_request_id_out_of_its_bound_is_refused_at_each_door(request_id: str) -> None:
    """The service's 1-128 characters, in the API's model and the MCP tool's schema (an empty
    one reached the service through the API; the tool's schema said no bound at all)."""
    with pytest.raises(ValidationError) as by_api:
        RegenerateIn.model_validate({"request_id": request_id})
    assert [error["loc"] for error in by_api.value.errors()] == [("request_id",)]
    with pytest.raises(ValidationError):
        TypeAdapter(RequestId).validate_python(request_id)
