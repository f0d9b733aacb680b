"""The task a spoken name picks: by its name, or by its label (`voice_task_labels`), said
whole or in part, a letter or two off, or with a time of the day; or the question asked back,
naming the tasks it could be (a place said next is one of the tasks it named). Deterministic, no
LLM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from typing import NamedTuple

from ambient.speech import MAX_SPOKEN, cleaned
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from ambient.watches.summaries import SAYING, summary_said
from mcp_server.voice_clock import clock_as_labelled
from mcp_server.voice_numbers import digits_in_names
from mcp_server.voice_references import (
    LIST_SEP_EN,
    OPPOSITE_VERBS,
    UNSAID,
    VERB_SAID,
    WHAT_IT_IS,
    Heard,
    counted,
    flat,
    heard,
    index_said,
    names_a_place,
    names_nothing,
    only_so_many,
    other_verb,
    part_of,
    place_alone,
    without_verb,
)
from mcp_server.voice_summaries import BRIEFING_SAID, BRIEFING_SUMMARY, spoken_summary
from mcp_server.voice_task_labels import (
    answer_labels,
    kind_word,
    said_alike,
    said_order,
    summary_phrase,
    task_label,
    task_labels,
    unnamed,
    with_time,
)

# How near a name heard must be to one of the user's to be offered as meant (difflib's ratio:
# "oderapi" to "orderapi" 0.93, "usercentre" to "usercenter" 0.80; "backup" to "billing" 0.31).
NEAR = 0.75


def _nearest(
    key: str, tasks: Sequence[TaskSummary], name_of: Callable[[TaskSummary], Heard]
) -> list[TaskSummary]:
    """The tasks whose name is within ``NEAR`` of ``key`` as heard, the nearest first."""
    matcher = SequenceMatcher(b=key, autojunk=False)
    scored = []
    for place, task in enumerate(tasks):
        matcher.set_seq1(name_of(task).flat)
        if matcher.real_quick_ratio() >= NEAR and (ratio := matcher.ratio()) >= NEAR:
            scored.append((-ratio, place, task))
    return [task for _, _, task in sorted(scored, key=lambda s: s[:2])]


def _no_task_called(said: str, english: bool) -> str:
    """The "no task called …" sentence, quoting what was said; what the voice cannot say (a
    web address, a task id) unquoted: "没找到叫“”的任务" was heard "没找到叫的任务"."""
    if not cleaned(said, english=english).strip("“”\"' "):
        return "I found no such task." if english else "没找到这个任务。"
    return f"I found no task called “{said}”." if english else f"没找到叫“{said}”的任务。"


class Picked(NamedTuple):
    """A spoken task reference resolved: the task; or None, the question asked back and the
    tasks it named, in its order (ids: a place said next is one of them)."""

    task: TaskSummary | None
    question: str
    named: list[str]


# The kinds an answer names by their kind word alone when a task of it has no name (the
# failing watches what_needs_me and recent_errors list).
SAID_BARE = frozenset({TaskKind.WEB_MONITOR, TaskKind.THRESHOLD_WATCH})
# The kinds whose summary says the time of day they run at ("每天 20点"): a time said finds them.
AT_A_TIME = frozenset({TaskKind.SCHEDULE, TaskKind.NEWS_DIGEST})


def pick_task(
    tasks: list[TaskSummary],
    said: str,
    english: bool = False,
    *,
    named: Sequence[str] = (),
    verbs: tuple[str, ...] = (),
) -> Picked:
    """The task whose name (or summary) ``said`` names; ask back when none or several
    (in English when ``english``). A place alone ("第二个", "2", "the second") is one in
    ``named``, the tasks the user's last answer on this device named (a voice call carries no
    history: its caller keeps them), before any name: asked "8点30分还是20点30分？", the
    user's "第二个" came as 2 and paused backup-2, a task the question never named. With none
    named, a name is meant ("2" is backup-2), the only task is the first, and else the
    question asks which, naming them (a place among tasks never said picked one the user
    never heard). The tool's own ``verbs`` and fillers a model copied before the reference
    are left out ("恢复第二个", "暂停那个价格监控"), unless it is a task's name as said; the
    other tool's (`other_verb`: "恢复2" sent to pause_task) pick nothing and say what was heard,
    the list kept, unless the reference with it is a task's name or a part of one ("继续集成"),
    not a place in the list ("恢复2" paused the list's second task).
    A number said in words after a name ("backup 二", "backup two") is its digits when the
    words find none: asked back "backup 1、backup 2?", the user said "backup 二" again. Not
    a time's words: "the eight thirty reminder", asked which of 8:30 and 20:30, was "the 8 30
    reminder", and that the reminder at 8:30 ("830")."""
    if (bare := without_verb(said, verbs)) != said and not _exact(tasks, said):
        said = bare
    # The other tool's verb (the model picked the wrong tool): a place after it answers no list
    # asked, and words no task's name holds with it name none.
    answers_list = bool(named) and names_a_place(said)
    if other_verb(said, verbs) and (answers_list or not _holds(tasks, said)):
        return Picked(None, _other_verb_heard(verbs, english), [])
    picked = _pick_task(tasks, said, english, named=named)
    if (
        picked.task is None
        and (digits := digits_in_names(said)) != said
        and clock_as_labelled(said) == said
    ):
        again = _pick_task(tasks, digits, english, named=named)
        if again.task is not None:
            return again
    if picked.task is None and (number := _number_read_as_time(said)) is not None:
        # Digits alone read as a time that no reminder has ("443" is 4:43): the one task
        # whose name holds that number ("port 443") is meant, as before times were read. A
        # time some task has ("830" with 8:30 and 20:30) stays asked back.
        live = [t for t in tasks if t.state is not TaskState.STOPPED]
        time = flat(clock_as_labelled(said))
        said_as = [summary_phrase(t.summary, t.kind, False) for t in live]
        if not any(time in flat(label) for label in [*task_labels(live, False).values(), *said_as]):
            holding = [t for t in live if number in re.findall(r"\d+", _name(t))]
            if len(holding) == 1:
                return Picked(holding[0], "", [])
    return picked


def _holds(tasks: list[TaskSummary], said: str) -> bool:
    """Whether ``said`` names a task as it is said: all of its name, or a part of its name or
    summary ("pause reminder" is `pause-reminder`, "继续集成" a reminder of 继续集成检查); not a
    place ("恢复2"), nor a name with a verb before it ("resume backup")."""
    if _exact(tasks, said):
        return True
    if names_a_place(said):
        return False
    key = flat(clock_as_labelled(said))
    bare = UNSAID.sub("", key)
    for task in tasks:
        summaries = (task.summary, *(spoken_summary(task.summary, en) for en in (False, True)))
        for name in (*_read_alike(_name(task)), *filter(None, summaries)):
            if part_of(key, name) or part_of(bare, heard(UNSAID.sub("", name))):
                return True
    return False


def _other_verb_heard(verbs: tuple[str, ...], english: bool) -> str:
    """What the tool of ``verbs`` answers a reference with the other tool's verb: what was
    heard, and that nothing changed."""
    own, other = VERB_SAID[verbs], VERB_SAID[OPPOSITE_VERBS[verbs]]
    if english:
        return f"I heard {other[1]}, not {own[1]}, so nothing was changed."
    return f"我听到的是{other[0]}，不是{own[0]}，所以没有改动。"


def _number_read_as_time(said: str) -> str | None:
    """The number ``said`` is, when it is digits alone that the clock reader took for a time
    ("443", "830"); None otherwise."""
    if re.fullmatch(r"\s*\d{3,4}\s*", said) and clock_as_labelled(said) != said:
        return said.strip()
    return None


def _name(task: TaskSummary) -> str:
    return task.task_id.rsplit("/", 1)[-1]


def _exact(tasks: list[TaskSummary], said: str) -> list[TaskSummary]:
    """The tasks whose name ``said`` says whole (a time in either read alike)."""
    # A time in what was said and in the names compared with it read alike ("8 pm", "晚上八点",
    # "20:00" are "20点"): an English speaker's reminder is one "at 20:00".
    key = flat(clock_as_labelled(said))
    return [t for t in tasks if any(flat(n) == key for n in _read_alike(_name(t)))]


def _read_alike(name: str) -> tuple[str, ...]:
    """``name`` as written and with its times as a label writes them ("20:00", "9pm" are
    "20点", "21点"), each compared with what was said: "standup 9" is still said of both
    standup-9am and standup-9pm. A reminder's message keeps its words: a time in "leave at 8"
    is none of the reminder's ("8 am" found the reminder at 7:00 saying it)."""
    said = summary_said(name)
    if said is not None and said.msgid == SAYING:
        schedule, _, message = name.partition(": ")
        return tuple(dict.fromkeys((name, f"{clock_as_labelled(schedule)}: {message}")))
    return tuple(dict.fromkeys((name, clock_as_labelled(name))))


def _pick_task(
    tasks: list[TaskSummary],
    said: str,
    english: bool = False,
    *,
    named: Sequence[str] = (),
) -> Picked:
    key = flat(clock_as_labelled(said))
    exact = _exact(tasks, said)
    # A deleted task is found by its name, but not counted or offered as one of yours, nor
    # asked about beside a live one of its name (the live one is meant).
    live = [t for t in tasks if t.state is not TaskState.STOPPED]
    exact = [t for t in exact if t in live] or exact
    # A place alone is a number, not a time ("830" is the reminder at 8:30, `clock_as_labelled`).
    text = said.strip().lower()
    place = place_alone(text) if clock_as_labelled(said) == said else None
    # A list asked about (``named``): a place alone answers it, before any name ("2" is its
    # second, not backup-2).
    answering = place if named else None
    if len(exact) == 1 and not answering:
        return Picked(exact[0], "", [])
    if not live and not exact:
        return Picked(None, "You have no tasks yet." if english else "你还没有任何任务。", [])

    def asking(listed: list[TaskSummary], question: str) -> Picked:
        return Picked(None, question, [t.task_id for t in listed])

    sep = LIST_SEP_EN if english else "、"
    labels = [task_labels(live, en) for en in (False, True)]  # said among the live ones
    _, alike = said_alike(live, english)  # kept together in every list said (`said_order`)
    shown = said_order(live, alike)[:4]  # the tasks an answer names, as many as fit

    def fitting(listed: list[TaskSummary], question: Callable[[str, int], str]) -> Picked:
        """``question(names, n)`` naming the first ``n`` of ``listed`` that fit in one spoken
        answer (one at least): cut by the answer's length, the last names went unsaid and a
        place said next ("the fourth") picked a task the user never heard."""
        n = len(listed)
        while True:
            text = question(sep.join(answer_labels(listed[:n], english, labels[english])), n)
            if n <= 1 or len(cleaned(text, english=english)) <= MAX_SPOKEN:
                return asking(listed[:n], text)
            n -= 1

    def yours(named: str, n: int) -> str:
        # Some of many named: how many there are is said, or four sound like all of them.
        if len(live) > n:
            return (
                f"You have {len(live)} tasks, like: {named}"
                if english
                else (f"你有 {len(live)} 个任务，比如：{named}")
            )
        return f"Your tasks are: {named}" if english else f"你的任务有：{named}"

    def which(named: str, n: int) -> str:
        if english:
            return f"Which task do you mean? {yours(named, n)}."
        return f"你说的是哪一个任务？{yours(named, n)}。"

    def at_place(ordinal: re.Match[str]) -> Picked:
        """The task at the place said in the list the last answer named (else the only task),
        or the question asked back."""
        by_id = {t.task_id: t for t in tasks}  # the list named a deleted one too
        places = [by_id[i] for i in named if i in by_id] or (live if len(live) == 1 else [])
        if not places:
            return fitting(shown, which)
        index = index_said(ordinal, text)
        if index is not None and -len(places) <= index < len(places):
            return Picked(places[index], "", [])
        # Past the end: how many, as for the fixes (not "没找到叫“第五个”的任务").
        if {t.task_id for t in places} == {t.task_id for t in live}:
            many_en = counted(len(places), "task", "tasks")
            return asking(places, only_so_many(f"{len(places)} 个任务", many_en, english))

        # Counted among some of them only (the list the last answer named, or the first four):
        # "只有 4 个任务" would be untrue, so the list a place counts in is named.
        def by_number(named: str, n: int) -> str:
            if english:
                return (
                    f"By number I can pick only these {n}: {named}. Say which number or the name."
                )
            return f"按第几个只能选这 {n} 个：{named}。请说第几个或任务名。"

        return fitting(places, by_number)

    if answering:
        return at_place(answering)
    if names_nothing(said):  # after the exact name: a task may be called "monitor"
        return fitting(shown, which)

    def called(key: str) -> list[TaskSummary]:
        # By its name, or its summary as written or as the voice says it in either language
        # ("提醒（每天 8点30分）", "threshold watch restarts"), with or without its punctuation;
        # first those it names whole, as a list said them ("提醒（每天 8点）", not also
        # "提醒（每天 8点30分）", of which it is a part). A place alone ("第二个") is one in the
        # list last said, not a part of a label said with its place among tasks said alike
        # ("第二个提醒（每天 8点30分）").
        bare, place = UNSAID.sub("", key), names_a_place(said)

        def says(n: Heard, unsaid: Heard) -> bool:  # said whole, with or without punctuation
            return key == n.flat or (bool(bare) and bare == unsaid.flat)

        whole = [t for t in live if any(says(*n) for n in _heard(t, place))]
        return whole or [
            t
            for t in live
            if any(part_of(key, n) for n in _heard_names(t))
            or any(part_of(key, n) or part_of(bare, unsaid) for n, unsaid in _heard(t, place))
        ]

    # Each task's names as they are compared (its summary as written and as said in either
    # language, its label), read once for every reference tried: with thousands of tasks,
    # reading them for each was seconds of a voice call's eight, none of them awaited.
    # By the listing's own objects: a task re-created lists under the id of its deleted one.
    heard_by_id: dict[tuple[int, bool], list[tuple[Heard, Heard]]] = {}
    names_heard: dict[int, list[Heard]] = {}

    def _heard(t: TaskSummary, place: bool) -> list[tuple[Heard, Heard]]:
        if (found := heard_by_id.get((id(t), place))) is None:
            names = (
                text
                for en in (False, True)
                for text in (
                    t.summary,
                    spoken_summary(t.summary, en),
                    task_label(t, en) if place else labels[en][t.task_id],
                )
            )
            said = [form for n in names if n for form in _read_alike(n)]
            found = [(heard(n), heard(UNSAID.sub("", n))) for n in said]
            heard_by_id[id(t), place] = found
        return found

    def _heard_names(t: TaskSummary) -> list[Heard]:
        if (found := names_heard.get(id(t))) is None:
            found = names_heard[id(t)] = [heard(n) for n in _read_alike(_name(t))]
        return found

    def _heard_name(t: TaskSummary) -> Heard:  # as the names heard near it are compared
        return _heard_names(t)[-1]

    def of_kind(key: str) -> list[TaskSummary]:
        """ "网页监控 reborn", "threshold watch reborn": a name with its kind."""
        return [
            t
            for t in tasks  # a deleted one too, as by its exact name
            if key
            in {
                flat(f"{kind}{t.task_id.rsplit('/', 1)[-1]}")
                for kind in (kind_word(t, False), kind_word(t, True))
                if kind
            }
        ]

    # Else without the words that only say what it is ("backup任务", "the backup task").
    found = exact or of_kind(key) or called(key) or called(WHAT_IT_IS.sub("", key))
    # A time said without its part of the day ("八点的提醒", "the 8 reminder") is the morning's
    # or the evening's (people leave the evening unsaid): a reminder at the one there is is
    # found; with both, asked which (the morning's was taken silently, and the evening's was
    # only offered when alone). A name's "20点" ("20点大促") is no time of the day.
    if not exact and (later := flat(clock_as_labelled(said, later=True))) != key:
        evening = [
            t
            for t in called(later) or called(WHAT_IT_IS.sub("", later))
            if t.kind in AT_A_TIME and t not in found
        ]
        if found and evening:
            # Four named at most, as for any name said, from both halves of the day.
            morning = said_order(found, alike)[: max(2, 4 - len(evening))]
            either = morning + said_order(evening, alike)[: 4 - len(morning)]
            total = len(found) + len(evening)

            def which_time(named: str, n: int) -> str:
                # Each with its time: "standup还是lunch？" left the user to recall which is when.
                listed = answer_labels(either[:n], english, labels[english])
                told = [with_time(t, s, english) for t, s in zip(either, listed, strict=False)]
                first, last = sep.join(told[:-1]), told[-1]
                if n < total or not first:  # not all named: said to go on
                    first, last = sep.join(told), "another" if english else "别的"
                return (
                    f"Which one: {first} or {last}?"
                    if english
                    else f"你说的是哪一个：{first}还是{last}？"
                )

            return fitting(either, which_time)
        found = found or evening
    if len(found) > 1 and key in {
        flat(word) for t in found for word in (kind_word(t, False), kind_word(t, True)) if word
    }:
        # Its kind alone ("网页监控"), as the one watch of it without a name is said among named
        # ones (what_needs_me: "shop home、网页监控、billing"): that one, said back. Only a
        # watch's kind: nothing says a reminder bare, and "暂停提醒" paused the unnamed one of
        # two without asking (the user meant standup's as much).
        bare = [t for t in found if t.kind in SAID_BARE and unnamed(t.task_id.rsplit("/", 1)[-1])]
        found = bare if len(bare) == 1 else found
    said_as = {key, UNSAID.sub("", key)}  # with the words that say what it is left out too
    if not found and (said_as | {WHAT_IT_IS.sub("", n) for n in said_as}) & BRIEFING_SAID:
        # The briefing by what people call it, when no task's own name or summary is meant
        # ("早报" is a task "早报推送" first).
        found = [t for t in live if t.summary and BRIEFING_SUMMARY.match(t.summary)]
    # "第二个" alone (not "second backup"): its place among the tasks the last answer named.
    if not found and place:
        return at_place(place)
    if len(found) == 1:
        return Picked(found[0], "", [])
    found = said_order(found, alike)
    no_task = _no_task_called(said, english)
    if not found and (
        near := _nearest(key, live, _heard_name)
        or _nearest(WHAT_IT_IS.sub("", key), live, _heard_name)
    ):
        # A name heard a letter or two off ("oder api", "payment getaway"): the nearest said,
        # not the first tasks of the list whatever was said.
        def meant(named: str, n: int) -> str:
            if english:
                return f"{no_task} Did you mean {named}?"
            return f"{no_task}你是说{named}吗？"

        return fitting(near[:4], meant)
    if not found:

        def none_called(named: str, n: int) -> str:
            return f"{no_task} {yours(named, n)}." if english else f"{no_task}{yours(named, n)}。"

        return fitting(shown, none_called)

    def some_fit(named: str, n: int) -> str:
        # Four named at most; past them the list is said to go on, or they sound like all.
        if len(found) > n:
            named += f"{LIST_SEP_EN}and more" if english else " 等"
        if english:
            return f"{len(found)} tasks fit: {named}. Please say the full name."
        return f"有 {len(found)} 个任务符合：{named}。请说完整的名字。"

    return fitting(found[:4], some_fit)
