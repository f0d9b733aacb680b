"""Arguments a voice model got wrong: answered in words, as every voice answer is (a voice client
drops the text of an error result, and pydantic's text is no sentence to speak)."""

from __future__ import annotations

from typing import Any

from mcp import Client

from ambient import temporal
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.settings import Settings
from ambient.storage.repositories import EventRepository
from ambient.wiring import AppState, StateHolder
from mcp_server.voice import build_voice_server
from mcp_server.voice_sentences import UNKNOWN_SPEAKER, UNKNOWN_TOOL, UNKNOWN_TOOL_EN
from tests.briefing.harness import make_user
from tests.conftest import unique
from tests.foundation.test_postgres import on_postgres, postgres_url  # noqa: F401  (fixture)
from tests.support.mcp_as import mcp_as
from tests.support.servers import free_port, http_client
from tests.voice.support import UNREACHED, UNREACHED_EN, say, voice_without_temporal

SPAN_AGAIN = "没听清时间范围（一小时到一周，比如“两天”），请再说一次。"
# What a small model sends: a required reference left out or empty, a span it made up, a
# list where a name goes, a reference far past what anyone says.
MISHEARD: list[tuple[str, dict[str, Any], str]] = [
    ("task_status", {}, "没听清任务名，请再说一次。"),
    ("pause_task", {"name": ""}, "没听清任务名，请再说一次。"),
    ("resume_task", {"name": "x" * 300}, "没听清任务名，请再说一次。"),
    ("approve_remediation", {"which": None}, "没听清是哪个修复，请再说一次。"),
    ("refuse_remediation", {"which": "checkout", "reason": "y" * 201}, "没听清原因，请再说一次。"),
    ("recent_errors", {"hours": "abc"}, SPAN_AGAIN),
    ("recent_errors", {"hours": 0}, SPAN_AGAIN),
    ("greet", {"speaker": ["lin"]}, "没听清是谁在说话，请再说一次。"),
]


async def test_misheard_arguments_are_answered_in_words_naming_what_to_say_again(
    deps: WorkerDeps,
) -> None:
    user = unique("va")
    await make_user(deps.db, user)
    # Nothing may run: the arguments are refused before any service is asked.
    async with voice_without_temporal(deps, user) as voice:
        for tool, args, expected in MISHEARD:
            assert await say(voice, tool, **args) == expected, (tool, args)
        # Two refused at once are said together, each once.
        answer = await say(voice, "refuse_remediation", which="", reason="y" * 201)
        assert answer == "没听清是哪个修复和原因，请再说一次。"


async def test_a_number_where_words_go_is_read_as_its_text_not_asked_again(
    deps: WorkerDeps,
) -> None:
    """ "批准第二个" sent as which=2, a task as name=3 or a voiceprint named by digits as
    speaker=1001 was answered "没听清…，请再说一次。": said again, the same number came back
    and the same answer. A number is read as the words it stands for, and so is a boolean, in
    every text argument (a refusal's reason=5 was asked again, and the refusal never ran)."""
    user = unique("vnum")
    await make_user(deps.db, user)
    async with voice_without_temporal(deps, user) as voice:
        for tool, args in [
            ("approve_remediation", {"which": 2}),
            ("refuse_remediation", {"which": 1}),
            ("refuse_remediation", {"which": "checkout", "reason": 5}),
            ("refuse_remediation", {"which": "checkout", "reason": True}),
            ("approve_remediation", {"which": False}),
            ("task_status", {"name": 3}),
            ("pause_task", {"name": 1.5}),
            ("resume_task", {"name": True}),
        ]:
            said = await say(voice, tool, **args)
            as_text = {key: _text(value) for key, value in args.items()}
            assert "没听清" not in said and said == await say(voice, tool, **as_text), (tool, said)
        assert await say(voice, "greet", speaker=1001) == UNKNOWN_SPEAKER


def _text(value: object) -> str:
    """A JSON scalar as the words it stands for (true, not Python's True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


async def test_a_tool_the_voice_profile_does_not_have_is_answered_in_words(
    deps: WorkerDeps,
) -> None:
    # A speaker with a stale tool list (or a model that made a name up): a voice client drops
    # an error result's text, so "Unknown tool" was silence.
    async with voice_without_temporal(deps, "vu") as voice:
        for name in ("delete_task", "create_web_monitor", "greeting"):
            assert await say(voice, name) == UNKNOWN_TOOL, name


async def test_null_for_an_optional_argument_is_the_argument_left_out(deps: WorkerDeps) -> None:
    # A small model fills optional strings with null: "reason": null was asked to say the
    # reason again (and "hours": null the span), while "speaker": null was taken as unsaid.
    user = unique("vn")
    await make_user(deps.db, user)
    async with voice_without_temporal(deps, user) as voice:
        unsaid = await say(voice, "refuse_remediation", which="checkout")
        assert "没听清" not in unsaid
        nulls = {"reason": None, "speaker": None}
        assert await say(voice, "refuse_remediation", which="checkout", **nulls) == unsaid
        assert await say(voice, "recent_errors", hours=None, speaker=None) == (
            f"最近 24 小时没有记录到错误{UNREACHED}"
        )
        # A required one is still asked for again.
        assert await say(voice, "task_status", name=None) == "没听清任务名，请再说一次。"


async def test_a_nul_in_a_voice_argument_is_said_again_not_a_crash_on_postgresql(
    settings: Settings,
    postgres_url: str,  # noqa: F811
) -> None:
    # PostgreSQL refuses a NUL (U+0000) in text: a speaker or task name holding one reached it
    # and the tool crashed ("Error executing tool greet", which a voice client drops).
    async with on_postgres(settings, postgres_url) as (settings, db):
        user = unique("vz")
        await make_user(db, user)
        client = await temporal.connect(settings, lazy=True)
        async with http_client() as http:
            channels = build_channels(settings, db, http)
        state = AppState(
            settings=settings, db=db, temporal=client, channels=channels, stdio_user=user
        )
        async with Client(build_voice_server(settings, holder=StateHolder(state))) as voice:
            assert await say(voice, "greet", speaker="a\x00b") == "没听清是谁在说话，请再说一次。"
            assert await say(voice, "task_status", name="a\x00b") == "没听清任务名，请再说一次。"


async def test_a_span_of_whole_days_is_said_back_in_days_in_the_users_language(
    deps: WorkerDeps,
) -> None:
    """ "这一周有错误吗" was answered "最近 168 小时没有错误。" and "in the past three days"
    "No errors in the last 72 hours.": a span said in days or weeks came back in hours."""
    from ambient.domain.users import Language, UserCreate
    from ambient.storage.repositories import EventRepository
    from ambient.storage.users import UserRepository

    chinese, english = unique("vd"), unique("vde")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=chinese, language=Language.ZH))
        await UserRepository(session).create(UserCreate(name=english, language=Language.EN))
        await EventRepository(session).add(
            "watch.failing", user=english, task=f"web-monitor/{english}/shop", payload={}
        )
        await session.commit()
    settings = deps.settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    client = await temporal.connect(settings, lazy=True)

    def server(user: str) -> Client:
        return mcp_as(deps, user, temporal=client, settings=settings, voice=True)

    async with server(chinese) as voice:
        said = await say(voice, "recent_errors", hours="这一周")
        assert said == f"最近 7 天没有记录到错误{UNREACHED}", said
        said = await say(voice, "recent_errors", hours="过去两天")
        assert said == f"最近两天没有记录到错误{UNREACHED}", said
        said = await say(voice, "recent_errors", hours=36)
        assert said == f"最近 36 小时没有记录到错误{UNREACHED}", said
        said = await say(voice, "recent_errors")
        assert said == f"最近 24 小时没有记录到错误{UNREACHED}", said
    async with server(english) as voice:
        said = await say(voice, "recent_errors", hours="the past three days")
        assert said == "1 error in the last 3 days, from shop.", said
        assert await say(voice, "recent_errors", hours=1) == (
            "1 error in the last hour, from shop."
        )


async def test_a_span_past_a_week_is_read_as_the_week_and_said_so_however_it_is_written(
    deps: WorkerDeps,
) -> None:
    """hours=500 (or "500") was asked again, "没听清时间范围（一小时到一周…）", while 500.0 and
    "两百小时" were read as the week: one rule now, whatever the form, and the answer says the
    week it read. A span of no hours is still asked again."""
    from ambient.domain.users import Language, UserCreate
    from ambient.storage.users import UserRepository

    chinese, english = unique("vwk"), unique("vwke")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=chinese, language=Language.ZH))
        await UserRepository(session).create(UserCreate(name=english, language=Language.EN))
        await session.commit()
    past_a_week: list[Any] = [500, "500", 500.0, "500.5", 169, "两百", "两百小时", "三周"]
    async with voice_without_temporal(deps, chinese) as voice:
        for hours in past_a_week:
            said = await say(voice, "recent_errors", hours=hours)
            assert said == f"最近 7 天没有记录到错误{UNREACHED}", (hours, said)
        for hours in (0, "0", "零", 0.0, -5, -0.5):
            assert await say(voice, "recent_errors", hours=hours) == SPAN_AGAIN, hours
    async with voice_without_temporal(deps, english) as voice:
        for hours in (500, "two hundred hours"):
            said = await say(voice, "recent_errors", hours=hours)
            assert said == f"No errors recorded in the last 7 days{UNREACHED_EN}", (hours, said)


async def test_a_span_said_in_years_or_quarters_is_read_as_the_week_not_asked_again(
    deps: WorkerDeps,
) -> None:
    """ "最近一年有报错吗" copied as hours="一年" was answered "没听清时间范围…，请再说一次。",
    and so was every saying of it again ("半年", "今年", "a year", "一个季度"), while "三个月"
    was read as the week: past a week, a span in years or quarters is the week, said so."""
    user = unique("vy")
    await make_user(deps.db, user)
    years = ["一年", "半年", "今年", "最近一年", "一个季度", "a year", "past year", "last quarter"]
    async with voice_without_temporal(deps, user) as voice:
        said = await say(voice, "recent_errors", hours="三个月")
        assert said == f"最近 7 天没有记录到错误{UNREACHED}", said
        for hours in years:
            said = await say(voice, "recent_errors", hours=hours)
            assert said == f"最近 7 天没有记录到错误{UNREACHED}", (hours, said)


async def test_an_argument_said_again_is_asked_in_the_speakers_language_not_the_owners(
    deps: WorkerDeps,
) -> None:
    """A misheard argument was asked again in the device owner's language: an English-speaking
    colleague the owner's speaker answers by voiceprint heard every answer in English but
    "没听清时间范围…，请再说一次。" when a span was misheard."""
    from ambient.domain.users import Language, UserCreate
    from ambient.storage.users import UserRepository
    from ambient.xiaozhi import DeviceService

    owner, guest = unique("vso"), unique("vsg")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=owner, language=Language.ZH))
        await UserRepository(session).create(
            UserCreate(name=guest, language=Language.EN, voiceprint_id=f"vp-{guest}")
        )
        await session.commit()
    devices = DeviceService(deps.db)
    mac = f"speaker-{owner}"  # a device id that is no MAC is kept as it is
    await devices.add(owner, owner, mac)
    await devices.allow(guest, mac)
    async with voice_without_temporal(deps, owner) as voice:
        assert await say(voice, "recent_errors", speaker=f"vp-{guest}") == (
            f"No errors recorded in the last 24 hours{UNREACHED_EN}"
        )
        assert await say(voice, "recent_errors", hours="soon", speaker=f"vp-{guest}") == (
            "I didn't catch the time span, from one hour to a week, like two days."
            " Please say it again."
        )
        # the owner, and a voice nobody has, are still asked in the owner's language
        assert await say(voice, "recent_errors", hours="soon") == SPAN_AGAIN
        assert await say(voice, "recent_errors", hours="soon", speaker="陌生人") == SPAN_AGAIN
        # a tool the profile lacks is said in the speaker's language too
        assert await say(voice, "get_weather", speaker=f"vp-{guest}") == UNKNOWN_TOOL_EN
        assert await say(voice, "get_weather") == UNKNOWN_TOOL


async def test_an_empty_string_for_an_optional_argument_is_the_argument_left_out(
    deps: WorkerDeps,
) -> None:
    """A small model fills an optional argument it has nothing for with "" as with null:
    "最近有错误吗" sent as hours="" was answered "没听清时间范围…，请再说一次。", and said
    again, the same "" came back with the same answer. Left out, as null is."""
    user = unique("ve")
    await make_user(deps.db, user)
    async with voice_without_temporal(deps, user) as voice:
        for blank in ("", "  "):
            none_recorded = f"最近 24 小时没有记录到错误{UNREACHED}"
            assert await say(voice, "recent_errors", hours=blank) == none_recorded
            assert await say(voice, "recent_errors", hours=blank, speaker=blank) == none_recorded
        unsaid = await say(voice, "refuse_remediation", which="checkout")
        assert await say(voice, "refuse_remediation", which="checkout", reason="") == unsaid
        # A required one is still asked for again.
        assert await say(voice, "task_status", name="") == "没听清任务名，请再说一次。"
        assert (
            await say(voice, "approve_remediation", which=" ") == "没听清是哪个修复，请再说一次。"
        )


async def test_half_a_day_is_twelve_hours_not_a_day(deps: WorkerDeps) -> None:
    """ "errors in the last half a day" was read as "a day" (the "half" before "a" unread) and
    answered "最近 24 小时…"; "半天" was always 12."""
    user = unique("vh")
    await make_user(deps.db, user)
    async with voice_without_temporal(deps, user) as voice:
        for said, hours in [("half a day", 12), ("the last half an hour", 1), ("半天", 12)]:
            answer = await say(voice, "recent_errors", hours=said)
            assert answer == f"最近 {hours} 小时没有记录到错误{UNREACHED}", (said, answer)


async def test_two_unnamed_watches_failing_are_two_watches_not_one(deps: WorkerDeps) -> None:
    # Two unnamed web monitors are both said "网页监控": counted by what was said, their two
    # errors were "都来自 网页监控", one watch where two failed.
    user = unique("vu")
    await make_user(deps.db, user)
    async with deps.db.session() as session:
        for watch in ("0123456789ab", "ba9876543210"):
            await EventRepository(session).add(
                "watch.failing", user=user, task=f"web-monitor/{user}/{watch}"
            )
        await session.commit()
    async with voice_without_temporal(deps, user) as voice:
        said = await say(voice, "recent_errors")
    # "主要是" said there were others: the two are said once, with how many.
    assert said == "最近 24 小时有 2 个错误，都来自 网页监控（2 个）。", said
