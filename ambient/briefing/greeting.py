"""A greeting, the voice trigger, on the service's side (`BriefingService` is a `Greeting`).

The workflow decides (exactly once per user per day); this side bounds the caller's wait,
says the answers in the user's language and adds the TTS audio when Tencent Cloud is set up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from ambient import no_answer
from ambient.briefing.errors import (
    BriefingError,
    BriefingNotFoundError,
    BriefingRefusedError,
    InvalidBriefingError,
    request_id_of,
    update_id_of,
)
from ambient.briefing.greeting_answers import (
    NO_WORKER,
    NOT_IN_TIME,
    NOT_SET_UP,
    NOT_SET_UP_ADMIN_NO_MODEL,
    NOT_SET_UP_BY_TOOL,
    NOT_SET_UP_NO_MODEL,
    GreetOutcome,
    GreetRequest,
    GreetResult,
    greeted_at,
    greeting_text,
)
from ambient.briefing.models import BriefingStatus
from ambient.briefing.pushed import day_pushed, todays_whereabouts
from ambient.briefing.records import store_given
from ambient.clients.tencent.client import TencentCloud, calls_within
from ambient.clients.tencent.errors import TencentCloudError
from ambient.clients.tencent.tts import text_to_voice, tts_segments
from ambient.domain.users import MAX_USER_NAME, Language
from ambient.request_deadline import bounded
from ambient.settings import Settings
from ambient.speech import cleaned, said_time
from ambient.status import pollers
from ambient.storage import Database
from ambient.storage.briefings import BriefingRepository
from ambient.storage.models import User
from ambient.storage.users import registered, user_named
from ambient.watches.configs import task_id_for
from workflows.daily_briefing import (
    GREETING_CLOCK_SKEW,
    GREETING_HANDED_OVER,
    GREETING_TOO_LATE,
    GREETING_WAIT,
    DailyBriefingWorkflow,
)
from workflows.daily_briefing_prepare_push import BRIEFING_DELETED

log = logging.getLogger(__name__)
# What a greeting keeps of its caller's wait for the update's trip to the workflow and back.
GREET_ROUND_TRIP = 2.0
# How long a spoken greeting waits for its record (the run stores it at the window's end too).
STORE_GIVEN_WITHIN = 1.0
# Records not stored within it, still being written (held here: the loop keeps weak ones).
_storing: set[asyncio.Future[None]] = set()


# Greetings cut short once their update was sent, by user: (its request id, when). The day may
# have been spoken to it and not heard ("call me again" was said): the user's next greeting
# without an id of its own, in this process and within UNHEARD_FOR, takes that id and hears the
# briefing that was spoken to it, once. Another process (an API replica) says "already given".
_unheard: dict[str, tuple[str, float]] = {}
UNHEARD_FOR = 30 * 60.0


def _heard_later(user: str, now: float) -> str | None:
    """The request id of ``user``'s greeting cut short lately (taken: it is asked once)."""
    request_id, at = _unheard.pop(user, ("", 0.0))
    for name, (_, then) in list(_unheard.items()):  # the others' too old: forgotten
        if now - then > UNHEARD_FOR:
            _unheard.pop(name, None)
    return request_id if request_id and now - at <= UNHEARD_FOR else None


def _stored(user: str, store: asyncio.Future[None]) -> None:
    """A greeting's record written, or why not (the run stores it at the window's end)."""
    _storing.discard(store)
    if not store.cancelled() and (error := store.exception()) is not None:
        log.warning("storing %s's greeting failed: %r", user, error)


async def _wall_clock() -> datetime:
    return datetime.now(UTC)


# How long a device's greeting (POST /voice/greeting) is listened for unless it says: a 小智's
# call gives up at 10 s (NOTES), and the answer has its way back to make.
DEVICE_LISTENS = 8.0


class Greeting:
    """The greeting of `BriefingService`, whose clients and settings it uses."""

    client: Client
    settings: Settings
    db: Database
    tencent: TencentCloud
    # The workflow answers a greeting within GREETING_WAIT; past this the caller gets an answer
    # to say instead of waiting for good on a worker that does not reply.
    greet_timeout = GREETING_WAIT + timedelta(seconds=5)
    # The clock a greeting's answer_by is read from (the workflow compares it with its own).
    clock: Callable[[], Awaitable[datetime]] = staticmethod(_wall_clock)

    if TYPE_CHECKING:

        async def read_status(self, user: str, *, quiet: bool = False) -> BriefingStatus | None: ...

    async def _chinese(self, user: str | User) -> bool:
        """Whether ``user`` (a name, or the row already read) hears Chinese: their language,
        else the server's default."""
        row = await user_named(self.db, user) if isinstance(user, str) else user
        return ((row.language if row else None) or self.settings.default_language) == Language.ZH

    @staticmethod
    async def _given_to_another(
        handle: WorkflowHandle[Any, Any], request_id: str, until: float
    ) -> GreetResult | None:
        """The "already given" answer when today's briefing was spoken to another request
        than ``request_id``, by a query (no history write), no longer than the caller listens
        (``until``): a worker down answers no query either."""
        left = max(0.1, until - asyncio.get_running_loop().time())
        return await no_answer.queried(
            lambda rpc: handle.query(
                DailyBriefingWorkflow.already_given, request_id, rpc_timeout=rpc
            ),
            min(no_answer.QUERY_TIMEOUT, timedelta(seconds=left)),
        )

    async def _heard_zh(self, user: str) -> bool:
        """``_chinese``, or the server's default when the database does not answer (a spoken
        briefing from a worker of the release before, which does not say its language)."""
        try:
            return await self._chinese(user)
        except SQLAlchemyError:
            return self.settings.default_language == Language.ZH

    async def _said(
        self, user: str | User, outcome: GreetOutcome, texts: tuple[str, str]
    ) -> GreetResult:
        """A greeting the workflow did not give, in the user's language: a TTS reads one."""
        return GreetResult(
            outcome=outcome, text=texts[0] if await self._chinese(user) else texts[1]
        )

    def _not_set_up(
        self, via: str, user: User | None, for_another: str | None = None
    ) -> tuple[str, str]:
        """Where a briefing is set up, as the greeter can: the web page's assistant, unless no
        model answers it; then a voice asks an administrator (an administrator runs the CLI),
        an MCP client (the CLI) calls the tool. ``for_another``: an admin greeting for that
        user, whose briefing is theirs to set up (the tool would set up the admin's own)."""
        if for_another is not None:
            return (
                f"{for_another} 还没有设置每日简报：需要 {for_another} 自己设置。",
                f"{for_another} has no daily briefing set up yet: {for_another} sets one up.",
            )
        if self.settings.llm_mode != "offline":
            return NOT_SET_UP
        if via != "voice":
            return NOT_SET_UP_BY_TOOL
        if user and user.is_admin:
            return NOT_SET_UP_ADMIN_NO_MODEL
        return NOT_SET_UP_NO_MODEL

    async def _in_users_words(self, user: str, result: GreetResult) -> GreetResult:
        """The workflow's short answers are in the briefing's language: said in the user's.
        The briefing itself stays in the language it was written in."""
        if result.outcome is GreetOutcome.SPOKEN or (
            result.outcome is GreetOutcome.OUTSIDE_WINDOW and result.window is None
        ):
            return result
        chinese = await self._chinese(user)
        text = greeting_text(
            result.outcome,
            "zh" if chinese else "en",
            hhmm=result.given_at_local,
            window=result.window or "",
            unprepared=result.unprepared,
        )
        if result.outcome is GreetOutcome.OUTSIDE_WINDOW:
            text = await self._with_todays(user, text, chinese)
        return result.model_copy(update={"text": text})

    async def _with_todays(self, user: str, text: str, chinese: bool) -> str:
        """``text`` (outside the window) with where today's briefing is, once today's window
        has passed unheard (the push channels that took it, else the inbox, or its page alone:
        `todays_whereabouts`): it said only when the next is given, as if today's were still to
        come. Nothing added when the status, the row or its deliveries are not read."""
        status = await self.read_status(user, quiet=True)
        if status is None or (day := status.day) is None:
            return text
        today = day.date_of(await self.clock())
        if today == day.date:  # before today's window: today's is still to be given
            return text
        if date.fromisoformat(day.date) - date.fromisoformat(today) == timedelta(days=1):
            text = _tomorrow(text, chinese)  # it said a window as if today's were to come
        try:
            async with self.db.session() as session:
                row = await BriefingRepository(session).get(user, today)
            if row is None or row.given_at is not None or row.prepared_at is None:
                return text
            # Which push channels took it: "your channels" was said when none had (no channel
            # set up, or each failed) and only the inbox kept it.
            pushed = await day_pushed(self.db, user, today) if row.pushed_at else None
        except SQLAlchemyError:
            return text
        # In the briefing's zone: the day planned is tomorrow's, and a clock change at its
        # midnight put today's push an hour off.
        zone = ZoneInfo(status.config.timezone)
        hhmm = f"{row.pushed_at.astimezone(zone):%H:%M}" if row.pushed_at else ""
        said = todays_whereabouts(
            pushed, chinese=chinese, hhmm=said_time(hhmm, english=not chinese)
        )
        hello, said = ("你好！", said) if chinese else ("Hello! ", said + " ")
        return text.replace(hello, hello + said, 1)

    async def _admin(self, user: str) -> bool:
        row = await user_named(self.db, user)
        return row is not None and row.is_admin

    async def greet(
        self,
        user: str,
        *,
        via: str = "mcp",
        request_id: str | None = None,
        audio: bool = True,
        caller: str | None = None,
        within: float | None = None,
    ) -> GreetResult:
        """The voice trigger; the workflow decides (exactly once per user per day). ``caller``:
        the signed-in user (greets for another only as an admin; None: a device or the CLI);
        ``within``: how long the caller listens, so the workflow waits no longer."""
        if len(user) > MAX_USER_NAME:  # no user's name is as long: refused, not said back
            raise InvalidBriefingError(
                f"user_id: at most {MAX_USER_NAME} characters", field="user_id"
            )
        if caller is not None and caller != user and not await self._admin(caller):
            raise BriefingRefusedError(
                f"greeting for {user!r} needs the admin role; omit user_id for yours"
            )
        clock = asyncio.get_running_loop().time
        listens = self.greet_timeout.total_seconds() if within is None else within
        until = clock() + min(listens, self.greet_timeout.total_seconds())
        # A caller's own id is theirs to send again; without one, one cut short may be taken.
        earlier = _heard_later(user, clock()) if request_id is None else None
        request_id = request_id_of(request_id)
        sent = False  # the update that may speak the day was sent

        def unheard() -> None:
            """Cut short: the greeting that may have been spoken (this one's update, else the
            earlier one this could not ask about) is the user's next greeting."""
            kept = request_id if sent else earlier
            if kept is not None:
                _unheard[user] = (kept, clock())

        # The same request id is applied once by Temporal: a retried call gets the same answer.
        update_id = update_id_of("greet", f"{user}/{request_id}")
        handle = self.client.get_workflow_handle(task_id_for(user))
        try:
            # Repeat greetings are answered by a query (no history write); the first one of
            # the day, and any retry of it, goes through the update that decides.
            # No longer than the caller listens: a worker down answers no query either.
            repeat = await self._given_to_another(handle, request_id, until)
            if repeat is not None and earlier is not None:
                # Given today: to the greeting cut short (whose id the workflow answers as
                # its own, None), its update with that id answers what it spoke, again.
                if await self._given_to_another(handle, earlier, until) is None:
                    request_id, repeat = earlier, None
                    update_id = update_id_of("greet", f"{user}/{request_id}")
            if repeat is not None:
                return await self._in_users_words(user, repeat)
            wait = None if within is None else max(0.0, until - clock() - GREET_ROUND_TRIP)
            # Past answer_by the workflow refuses the greeting: one taken up after this call
            # gave up (a worker down or backed up) must not spend the day on nobody. One taken
            # up by then still has its answer's way back, and the workflow allows for this
            # clock behind its own: answer_by is that much earlier than the caller's end.
            left = timedelta(seconds=max(0.0, until - clock() - GREET_ROUND_TRIP))
            answer_by = await self.clock() + left - GREETING_CLOCK_SKEW
            request = GreetRequest(
                request_id=request_id, via=via, wait_seconds=wait, answer_by=answer_by
            )
            # The whole wait is bounded, not each call: a server answers a long poll with
            # "nothing yet" before its deadline, and the client polls again.
            sent = True
            async with asyncio.timeout(max(0.0, until - clock())):
                result = await handle.execute_update(
                    DailyBriefingWorkflow.greet, request, id=update_id
                )
        except no_answer.CUT_SHORT:
            # Unknown, not failed: the same request id later gets the workflow's own answer
            # (a new answer_by, so an update refused as too late is decided then), and the
            # user's next greeting here is that request again. Unless Temporal itself is gone
            # (killed after the client connected): said as such, not "greet me again".
            unheard()
            return await self._not_in_time(user)
        except asyncio.CancelledError:
            unheard()  # the call ended under it (its connection handed over): as cut short
            raise
        except no_answer.QUERY_REFUSED as exc:
            if no_answer.not_found(exc):
                # Asked only here: an admin's typo heard "no briefing is set up" for nobody.
                row = await registered(self.db, user, BriefingNotFoundError)
                other = user if caller is not None and caller != user else None
                said = self._not_set_up(via, row, other)
                return await self._said(row, GreetOutcome.UNAVAILABLE, said)
            if no_answer.unanswered(exc) and not no_answer.task_failing(exc):
                # No worker answered (yet): a spoken answer, not an error.
                unheard()
                if no_answer.timed_out(exc):
                    return await self._not_in_time(user)
                return await self._said(user, GreetOutcome.PREPARING, NOT_IN_TIME)
            refused = no_answer.refused_request(no_answer.refusal(exc), request="the greeting")
            raise BriefingError(refused) from None
        except WorkflowUpdateFailedError as exc:
            if getattr(exc.cause, "type", None) == BRIEFING_DELETED:
                # Deleted, its run still finishing: as a moment later, once it has ended.
                deleted = await user_named(self.db, user)
                other = user if caller is not None and caller != user else None
                said = self._not_set_up(via, deleted, other)
                return await self._said(deleted or user, GreetOutcome.UNAVAILABLE, said)
            ended = (GREETING_TOO_LATE, GREETING_HANDED_OVER, no_answer.RUN_ENDED_UNDER_UPDATE)
            if getattr(exc.cause, "type", None) in ended:
                # This server's clock runs ahead, a new config is replacing the run, or the
                # run ended (deleted) under a greeting waiting for its preparation.
                return await self._said(user, GreetOutcome.PREPARING, NOT_IN_TIME)
            raise BriefingError(f"greeting failed: {exc.cause}") from None
        if result.outcome is not GreetOutcome.SPOKEN:
            return await self._in_users_words(user, result)
        try:
            return await self._spoken(user, result, via=via, audio=audio, until=until)
        except asyncio.CancelledError:
            # Spoken, and the answer cut off on its way (the caller's budget ran out): the
            # user's next greeting hears it.
            _unheard[user] = (request_id, clock())
            raise

    async def _not_in_time(self, user: str) -> GreetResult:
        """A greeting no worker answered in time: Temporal's own refusal raised when it does
        not answer at all (every door says that as Temporal down); "no worker runs" when none
        polled the queue lately (asked again, it never answers: a user greeting again and again
        heard "greet me again" each time); else "greet me again". Each asked once, a second
        at most."""
        _, down = await no_answer.out_of_time(self.client)
        if down is not None:
            raise down
        try:
            polling = await pollers(
                self.client,
                self.settings.temporal_namespace,
                self.settings.temporal_task_queue,
                (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,),
                timedelta(seconds=bounded(1.0)),
            )
        except RPCError:
            polling = None  # unknown: as slow
        if polling == 0:
            return await self._said(user, GreetOutcome.UNAVAILABLE, NO_WORKER)
        return await self._said(user, GreetOutcome.PREPARING, NOT_IN_TIME)

    async def _spoken(
        self, user: str, result: GreetResult, *, via: str, audio: bool, until: float
    ) -> GreetResult:
        """The day's briefing the workflow spoke to this greeting, stored as given and made
        ready for its caller (greeted at its hour, cleaned for a TTS, with audio)."""
        clock = asyncio.get_running_loop().time
        if result.date is not None and result.given_at is not None:
            # Stored now, not only when the window ends: a run reset from the Web UI to before
            # this greeting reads it back when it prepares, and stays spoken. Waited for a
            # moment (a database busy with writes must not hold the spoken answer), and written
            # after it all the same: cut off there, a reset before the window's end spoke again.
            store = asyncio.ensure_future(
                store_given(self.db, user, result.date, result.given_at, via)
            )
            _storing.add(store)
            store.add_done_callback(functools.partial(_stored, user))
            with contextlib.suppress(SQLAlchemyError, TimeoutError):  # said by _stored
                await asyncio.wait_for(asyncio.shield(store), STORE_GIVEN_WITHIN)
        # Written for the window's start, greeted at any hour in it ("早上好" at 23:33).
        result.text = greeted_at(result.text, result.given_at_local)
        result.segments[:1] = [greeted_at(s, result.given_at_local) for s in result.segments[:1]]
        speaking_aloud = audio and self.tencent.configured
        english = False
        if via == "voice" or speaking_aloud:  # the briefing's language (the user's may differ)
            english = result.language == "en" if result.language else not await self._heard_zh(user)
        if via == "voice":
            # A TTS reads it as it is: the writer's text loses its Markdown, ids and <*>, and
            # what cleaning puts in is in the briefing's language (the user's may have changed
            # since it was written). Nothing after the spoken answer may fail it: the day is
            # spent, and "it failed" was heard, then "already given".
            result.text = cleaned(result.text, english=english)
            # Cut again for TTS: "something" is longer than the "<*>" it replaces.
            result.segments = tts_segments(result.text)
        if speaking_aloud:
            # No longer than the caller still listens, less the answer's way back: the day is
            # spent, and an answer after it hung up was a briefing spoken to nobody.
            speaking = max(0.0, until - clock() - GREET_ROUND_TRIP)
            try:
                # Each TTS request timed out then too: a thread waiting on a cut-off one was
                # held for its own 30 s after the caller had gone.
                async with calls_within(speaking):
                    mp3 = await text_to_voice(self.tencent, result.text, english=english)
                result.audio_mp3_b64 = base64.b64encode(mp3).decode()
            # The text is the answer; audio is a bonus the device can synthesise itself.
            except TimeoutError:
                log.warning("TTS for %s not done in the %.1f s left: text only", user, speaking)
            except TencentCloudError as exc:
                log.warning("TTS failed for %s: %s", user, exc)
        return result


def _tomorrow(text: str, chinese: bool) -> str:
    """The answer outside the window (`greeting_text`) saying the next briefing is tomorrow's."""
    if chinese:
        return text.replace("每日简报在", "下一次每日简报在明天", 1)
    return text.replace(
        "The daily briefing is given at the first greeting",
        ("The next daily briefing is given at the first greeting tomorrow"),
        1,
    )
