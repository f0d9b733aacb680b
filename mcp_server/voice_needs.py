"""The voice profile's tools of what the user should hear first: greet (today's briefing,
spoken) and what_needs_me (fixes to approve, alerts open, watches failing or over their line),
every count said."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ambient.remediation.storage import RemediationRepository
from ambient.remediation.views import RemediationSummary
from ambient.speech import MAX_SPOKEN, cleaned
from ambient.storage.repositories import EventRepository
from ambient.wiring import AppState
from ambient.xiaozhi_context import HANDED_RECENT, failing_in_a_row, waiting_for
from mcp_server import voice_sentences as sentences
from mcp_server.auth import Ctx
from mcp_server.voice_answer import (
    Checking,
    answer,
    approvals_here,
    checking,
    english,
    left,
    say,
)
from mcp_server.voice_approvals import may_answer, name_clusters
from mcp_server.voice_errors import alike_once, labels_of, task_said, watching
from mcp_server.voice_fix_names import run_about
from mcp_server.voice_prompt import Spoken
from mcp_server.voice_references import LIST_SEP_EN, ORDINALS_EN, counted, ordinal_word
from mcp_server.voice_tasks import said_tasks

OPEN_LISTED = 500  # open runs what_needs_me counts; past it, "500 多个"
# Nothing needing the user said while nothing is known to check their tasks (`checking`): no
# worker polls, Temporal cannot be reached (no task runs), or it did not say in time.
_UNCHECKED = {
    Checking.NO_WORKER: (sentences.NO_WORKER_NEEDS, sentences.NO_WORKER_NEEDS_EN),
    Checking.TEMPORAL_DOWN: (sentences.TEMPORAL_DOWN_NEEDS, sentences.TEMPORAL_DOWN_NEEDS_EN),
    Checking.NOT_KNOWN: (sentences.UNCONFIRMED_NEEDS, sentences.UNCONFIRMED_NEEDS_EN),
}


async def greet(ctx: Ctx, speaker: Spoken = None) -> str:
    """The greeting: today's briefing, spoken."""

    async def work(state: AppState, user: str) -> str:
        # The briefing is spent on the greeting it answers: only while we still listen.
        result = await state.briefings.greet(user, via="voice", audio=False, within=left())
        # The briefing's first sentences (greeting, headline, the top error): speakable keeps
        # three, with what it puts in (a time in words) in the briefing's language, which the
        # user's may no longer be; any other answer is the service's, in the user's words.
        if result.language is not None:
            english.set(result.language == "en")
        return result.text

    return await answer(ctx, speaker, work)


async def what_needs_me(ctx: Ctx, speaker: Spoken = None) -> str:
    """What waits for the user: remediations to approve, alerts still open, watches failing
    or over their line."""

    async def work(state: AppState, user: str) -> str:
        service = state.remediations
        waiting = await waiting_for(service, user)
        await name_clusters(state, waiting)
        runs = (await service.list_page(user, open_only=True, limit=OPEN_LISTED + 1)).runs
        running = [r for r in runs[:OPEN_LISTED] if r.run_key not in {w.run_key for w in waiting}]
        handed = await handed_to(state, user)
        async with state.db.session() as session:
            events = EventRepository(session)
            pages = await events.failing(user=user)
            breaching = await events.breaching(user=user)
        failing = list(dict.fromkeys(task for task, _, _ in pages))  # a watch, however many pages
        # Over its line, as its breach was told ("all is well" was said of them); one failing
        # its reads is said failing.
        over = [task for task in breaching if task not in failing]
        if not waiting and not running and not failing and not over and not handed:
            if not await watching(state, user):  # nothing looks: "all is well" is not known
                return say(
                    "现在没有需要你处理的事，不过你还没有任务在看着。",
                    "Nothing needs you now, but no task of yours is watching yet.",
                )
            # Nothing checked, or not known to be: nothing found is no "all is well".
            if (checked := await checking(state)) is not Checking.WORKER:
                return say(*_UNCHECKED[checked])
            return say("现在没有需要你处理的事，一切正常。", "Nothing needs you now. All is well.")
        # Fixes and watches named: no list of tasks a place said next counts in.
        await said_tasks(state, user, [])
        storm = len(runs) > OPEN_LISTED
        labels = await labels_of(state, user, failing + over)
        named = [task_said(task, labels) for task in failing]
        over_named = [task_said(task, labels) for task in over]
        may = bool(waiting) and await may_answer(state, user, waiting[0].mode)
        in_a_row = failing_in_a_row(pages)
        return with_handed(
            handed,
            lambda room: needs_answer(
                waiting, running, storm, named, in_a_row, may=may, over=over_named, reserve=room
            ),
        )

    return await answer(ctx, speaker, work)


async def handed_to(state: AppState, user: str) -> list[RemediationSummary]:
    """The user's own runs handed over to a person within HANDED_RECENT (nobody approved in
    time, a manual rule, the budget spent), newest first: "all is well" was said seconds after
    one. Read from the runs' rows: an admin's list holds everyone's."""
    async with state.db.session() as session:
        rows = await RemediationRepository(session).handed_over(user, HANDED_RECENT)
    return [RemediationSummary.model_validate(row) for row in rows]


def with_handed(handed: list[RemediationSummary], rest: Callable[[int], str]) -> str:
    """What else needs the user (``rest``, given the characters a clause before it takes), the
    runs ``handed`` over to them said first: a clause of its first sentence (its "；"), so the
    rest keeps its sentences, named with the room the clause leaves (said after it whole, it
    was cut or dropped)."""
    said = ""
    for lead in _handed_leads(handed) if handed else [""]:
        after = rest(len(cleaned(lead, english=english.get())))
        if not after:
            return _closed(lead)
        said = f"{lead}{after}"
        if len(cleaned(said, english=english.get())) <= MAX_SPOKEN:
            return said
    return said


def _handed_leads(handed: list[RemediationSummary]) -> list[str]:
    """The hand-overs as the answer's first clause, the first named, then only counted."""
    leads = []
    for named in (True, False):
        first = run_about(handed[0], among=handed) if named else ""
        first_en = run_about(handed[0], english=True, among=handed) if named else ""
        more, more_en = (" 等", " and more") if named and len(handed) > 1 else ("", "")
        leads.append(
            say(
                f"有 {len(handed)} 个告警自动处理没能解决，交给你了"
                + (f"：{first}{more}；" if named else "；"),
                f"{counted(len(handed), 'alert', 'alerts')} could not be fixed automatically and "
                f"{'was' if len(handed) == 1 else 'were'} handed to you"
                + (f": {first_en}{more_en}; " if named else "; "),
            )
        )
    return leads


def _closed(lead: str) -> str:
    """The hand-over clause said alone: a sentence."""
    return lead.rstrip().removesuffix("；").removesuffix(";") + ("。" if "；" in lead else ".")


# How many fixes and watches an answer names, tried in turn until it is short enough to say:
# the first fix is named as long as any name is (the answer asks to approve it).
_NAMED = [(3, 3), (2, 3), (2, 2), (1, 2), (1, 1), (1, 0), (0, 0)]


def needs_answer(
    waiting: list[RemediationSummary],
    running: list[RemediationSummary],
    storm: bool,
    failing: list[str],
    in_a_row: tuple[str, str] = ("", ""),
    *,
    may: bool = True,
    over: list[str] | None = None,
    reserve: int = 0,
) -> str:
    """What needs the user (``failing``: the watches failing now, as said; ``over``: the
    watches over their line; ``may``: whether their rollback permission lets them approve the
    first fix; ``reserve``: characters a clause before it takes). Every count said whole: past
    what an answer holds, how badly the watches fail (``in_a_row``, `failing_in_a_row`) goes
    first, then names (``_NAMED``), not the sentences after them (``storm``: more alerts are
    open than were listed)."""
    for fixes, watches in _NAMED:
        for row in dict.fromkeys((in_a_row, ("", ""))):
            text = _needs_said(
                waiting, running, storm, failing, fixes, watches, row, may, over or []
            )
            if len(cleaned(text, english=english.get())) + reserve <= MAX_SPOKEN:
                return text
    return text


def _needs_said(
    waiting: list[RemediationSummary],
    running: list[RemediationSummary],
    storm: bool,
    failing: list[str],
    fixes: int,
    names: int,
    in_a_row: tuple[str, str],
    may: bool = True,
    over: list[str] | None = None,
) -> str:
    """What needs the user, every count said, naming ``fixes`` fixes and ``names`` watches at
    most (``storm``: more alerts are open than were listed)."""
    parts = []
    if waiting:
        named = "；".join(
            f"第{ordinal_word(i)}个是{run_about(r, among=waiting)}"
            for i, r in enumerate(waiting[:fixes])
        )
        named_en = LIST_SEP_EN.join(
            f"{ORDINALS_EN[i]}, {run_about(r, english=True, among=waiting)}"
            for i, r in enumerate(waiting[:fixes])
        )
        # Past the fixes named the list is said to go on, or they sound like all of them.
        if named and len(waiting) > fixes:
            named, named_en = f"{named} 等", f"{named_en}{LIST_SEP_EN}and more"
        said, said_en = (f"：{named}", f": {named_en}") if named else ("", "")
        # "The first one" only once it was named: unnamed, the listener asks which. Not to
        # one whose permission cannot approve it: the yes is refused (the hint said it was not).
        hint, hint_en = (
            ("可以说“批准第一个”。", "You can say approve the first one. ") if named else ("", "")
        )
        if not may:
            hint, hint_en = "审批要先请管理员授权。", "Approving needs an admin to grant it first. "
        elif not approvals_here.get():  # a read-only voice server: approved elsewhere
            hint, hint_en = "这里只能查看，审批请在网页上做。", "Approve it on the web page. "
        parts.append(
            say(
                f"有 {len(waiting)} 个修复等你审批{said}。{hint}",
                f"{counted(len(waiting), 'fix', 'fixes')} waiting for your approval"
                f"{said_en}. {hint_en}",
            )
        )
    # The watches failing: a clause of the alerts' sentence, or a sentence after the fixes'
    # (three sentences at most).
    watches, watches_en = _failing_said(failing, names) if failing else ("", "")
    watches, watches_en = watches + in_a_row[0], watches_en + in_a_row[1]
    if over:  # after the failing ones, named with the names left
        lines, lines_en = _over_said(over, max(0, names - len(dict.fromkeys(failing))))
        watches = f"{watches}；{lines}" if failing else lines
        watches_en = f"{watches_en}; {lines_en}" if failing else lines_en
        failing = [*failing, *over]  # either is a watch needing the user
    if running:
        more = "多" if storm else ""  # after a storm: "500 多个"
        more_en = " or more" if more else ""
        alerts = f"{counted(len(running), 'alert', 'alerts')}{more_en}"
        also, also_en = (f"，还有 {watches}", f", and {watches_en}") if failing else ("", "")
        if waiting:
            parts.append(
                say(
                    f"另有 {len(running)} {more}个告警正在自动处理{also}。",
                    f"Plus {alerts} handled automatically{also_en}.",
                )
            )
        else:  # nothing before it to be "besides"
            being = "is" if len(running) == 1 and not more else "are"
            parts.append(
                say(
                    f"没有等你审批的修复，有 {len(running)} {more}个告警正在自动处理{also}。",
                    f"No fixes wait for your approval; {alerts} {being} being handled"
                    f" automatically{also_en}.",
                )
            )
    elif failing and waiting:
        parts.append(say(f"另有 {watches}。", f"Also, {watches_en}."))
    elif failing:
        parts.append(
            say(
                f"没有等你审批的修复，但有 {watches}。",
                f"No fixes wait for your approval, but {watches_en}.",
            )
        )
    return "".join(parts).strip()


def _over_said(tasks: list[str], most: int) -> tuple[str, str]:
    """The watches over their line (``tasks``: each as said), counted, with ``most`` names
    at most, in Chinese and English."""
    listed, listed_en = _listed(tasks, most)
    one = len(tasks) == 1
    return (
        f"{len(tasks)} 个监控越过了阈值{listed}",
        f"{counted(len(tasks), 'watch', 'watches')} {'is' if one else 'are'} over "
        f"{'its' if one else 'their'} line{listed_en}",
    )


def _failing_said(tasks: list[str], most: int) -> tuple[str, str]:
    """The watches failing now (``tasks``: each as said), counted, with ``most`` names at
    most, in Chinese and English."""
    keeps = "keeps failing its" if len(tasks) == 1 else "keep failing their"
    listed, listed_en = _listed(tasks, most)
    return (
        f"{len(tasks)} 个监控一直检查失败{listed}",
        f"{counted(len(tasks), 'watch', 'watches')} {keeps} checks{listed_en}",
    )


def _listed(tasks: list[str], most: int) -> tuple[str, str]:
    """``most`` of the watches' names at most, after a colon; said alike (unnamed, their
    labels not read): once, with how many ("网页监控（2 个）")."""
    alike = Counter(tasks)
    names = [name if alike[name] == 1 else alike_once(name, alike[name]) for name in alike]
    shown, more = names[:most], len(names) > most
    if not shown:
        return "", ""
    return (
        f"：{'、'.join(shown)}{' 等' if more else ''}",
        f": {', '.join(shown)}{' and more' if more else ''}",
    )
