"""The voice profile's approvals: a waiting remediation approved or refused by voice.

Which run a decision names is the model's reading of the speaker's words, so with two or more
waiting the run is named back and asked first, and so is an approval of a step that changes
the cluster, one run waiting or many (docs/xiaozhi.md); the answer is sent to the run asked
about (its run key), never to whichever of the alert's runs is latest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field

from ambient import no_answer
from ambient.remediation.ladder import RUNG_NAMES_ZH, Rung
from ambient.remediation.safety import may_approve
from ambient.remediation.views import RemediationRefusedError, RemediationSummary, step_words
from ambient.storage.repositories import EventRepository
from ambient.storage.users import user_named
from ambient.wiring import AppState
from ambient.xiaozhi_context import waiting_for
from mcp_server.auth import Ctx
from mcp_server.voice_answer import answer, device, english, left, say
from mcp_server.voice_fix_names import (
    cluster_names,
    clusters_alike,
    named_whole,
    pick_remediation,
    run_about,
)
from mcp_server.voice_prompt import AsText, Reference, Spoken
from mcp_server.voice_references import names_nothing, ordinal_word
from mcp_server.voice_replies import Reply, reply_said

# With two or more waiting, which one a decision names is the model's reading of the user's
# words, and a small model picks one of two for "approve it" (docs/benchmarks.md, #25 round 11);
# an approval of a step that changes the cluster is asked about alone too (`asks_first`).
# So the first call names the run and its step back and asks; the same decision on the same
# rung of the same run (one life of it: its run key) within CONFIRM_WINDOW, from any replica,
# makes it — named again, or by a reply that names nothing ("批准。", "确认", "可以", "批准它",
# "approve it") right after the question. Such a reply after the question is the run asked
# about, for the other decision too, asked in turn ("不要" through refuse_remediation after
# "要批准…吗？": "要拒绝…吗？"); with no question, it names the one fix waiting, asked about by
# name ("要批准checkout…吗？"), and of several asks which one. A no or a wait ("等一下",
# "算了" to an approval, "不要" to a refusal's question) sends nothing and ends the question, and
# so does the other decision's verb ("拒绝第一个" through approve_remediation), said as heard. A
# decision made ends the question, so a "yes" never carries over to the run's next rung; and
# the same decision on the next rung of a run whose rung was just asked about or decided (a
# model repeating its call, a relay retrying it, a yes to a rung decided elsewhere meanwhile)
# is asked first too, however many wait: nobody has heard of that rung yet.
CONFIRM_WINDOW = timedelta(minutes=2)
CONFIRM_ASKED = "voice.confirm_asked"
# What a reply says ("可以", "批准那个", "approve it", "不要", "等一下"): `voice_replies`.


# A question is the device's it was asked at (the call's ``clientId``): a yes at another of the
# user's speakers is someone who did not hear it, and is refused in words.
CONFIRMS_READ = 50  # the user's latest questions and decisions read to find each device's


@dataclass(frozen=True)
class _Lately:
    """The decisions asked about ("asked") or made ("made") by voice, while fresh."""

    here: dict[str, Any]  # the last at this device
    anywhere: dict[str, Any]  # the last at any of the user's devices
    asked_elsewhere: bool  # another device's last is a question still open


async def _lately(state: AppState, user: str) -> _Lately:
    async with state.db.session() as session:
        rows = await EventRepository(session).list(
            user=user, kind=CONFIRM_ASKED, limit=CONFIRMS_READ
        )
    since = datetime.now(UTC) - CONFIRM_WINDOW
    here = device.get()
    last: dict[str, dict[str, Any]] = {}  # by device, its newest, while fresh
    for row in rows:  # newest first
        # One stored before questions named their device is any device's: this one's.
        at = row.payload.get("device", here)
        if at not in last:
            last[at] = row.payload if row.created_at >= since else {}
    fresh = rows[0].created_at >= since if rows else False
    return _Lately(
        here=last.get(here, {}),
        anywhere=rows[0].payload if fresh else {},
        asked_elsewhere=any("asked" in p for at, p in last.items() if at != here),
    )


# A fix's cluster is named from TKE's cluster list. Each call waited up to half its budget for
# it: TKE throttled or unreachable cost every call ~3.5 s of its 8, and left one more SDK thread
# waiting. Now one read at a time is shared by every call, each waits CLUSTERS_WAIT for it at
# most, and a read failed or late leaves the clusters unnamed, TKE unasked, for
# CLUSTERS_UNREAD_FOR (`TencentCloud.read_soon`).
CLUSTERS_WAIT = 1.0  # seconds a call waits for the cluster list
CLUSTERS_UNREAD_FOR = 60.0  # seconds a failed or late read leaves the clusters unnamed
VOICE_CLUSTERS = ("voice clusters",)  # the voice's one read of TKE's cluster list at a time


async def name_clusters(state: AppState, runs: list[RemediationSummary]) -> None:
    """For this call, the TKE names of the clusters that alone tell ``runs`` apart (two fixes
    of one workload, namespace and alert on two clusters), as `run_about` says them, when
    TKE's list is read in time; unread, the fixes are told apart by their place
    and namespace, as when no name is known."""
    clusters = clusters_alike(runs)
    cluster_names.set({})
    if not clusters or not state.cloud.configured:
        return
    reads = state.cloud_reads
    listed = await reads.tencent.read_soon(
        VOICE_CLUSTERS,
        reads.clusters,
        within=min(CLUSTERS_WAIT, left() / 2),
        unread_for=CLUSTERS_UNREAD_FOR,
    )
    if listed is not None:
        cluster_names.set({c.cluster_id: c.name for c in listed if c.cluster_id in clusters})


async def _note(state: AppState, user: str, payload: dict[str, Any]) -> None:
    async with state.db.session() as session:
        await EventRepository(session).add(
            CONFIRM_ASKED, user=user, payload={**payload, "device": device.get()}
        )
        await session.commit()


async def may_answer(state: AppState, user: str, mode: str | None) -> bool:
    """Whether ``user``'s rollback permission lets them approve or refuse a step run in
    ``mode`` (the run's check, read before anyone is asked to confirm)."""
    account = await user_named(state.db, user)
    permission = account.rollback_permission if account is not None else "none"
    return may_approve(permission, "execute" if mode == "execute" else "dry_run")


_VERB_SAID = {True: ("批准", "approve"), False: ("拒绝", "refuse")}  # by ``approve``


async def _decide(ctx: Ctx, which: str, approve: bool, reason: str, speaker: str | None) -> str:
    async def work(state: AppState, user: str) -> str:
        service = state.remediations
        waiting = await waiting_for(service, user)
        await name_clusters(state, waiting)
        lately = await _lately(state, user) if waiting else _Lately({}, {}, False)
        last = lately.here
        asked = last if "asked" in last else None
        # A name said whole is that name, whatever words it holds ("cancel-api").
        reply = Reply(None, which) if named_whole(waiting, which) else reply_said(which, approve)
        # A no to the refusal asked about ("要拒绝…吗？" "不要") refuses nothing either.
        refused_back = reply.said == "no" and asked is not None and not asked["asked"]["approve"]
        if reply.said == "wait" or (refused_back and not reply.named):
            if asked is not None:  # answered: a later "yes" confirms nothing
                await _note(state, user, {"dropped": asked["asked"]})
            if reply.said == "wait" and reply_said(which, not approve).said == "yes":
                # The other decision's verb ("拒绝第一个" to approve_remediation: the model
                # picked the wrong tool): said as heard, not as a wait.
                (verb, verb_en), (other, other_en) = _VERB_SAID[approve], _VERB_SAID[not approve]
                return say(
                    f"我听到的是{other}，不是{verb}，什么都没提交。",
                    f"I heard {other_en}, not {verb_en}, so nothing was sent.",
                )
            return say(
                f"好的，先不{'批准' if approve else '拒绝'}，什么都没提交。",
                f"OK, I won't {'approve' if approve else 'refuse'} it; nothing was sent.",
            )
        # Which one the words name: none ("可以", "批准它", "不要"), or one by its name or place.
        unnamed = names_nothing(which) or reply.names_no_fix
        gone = ""  # said before the question: the fix asked about no longer waits
        if unnamed:
            run = next((r for r in waiting if asked and r.run_key == asked["run_key"]), None)
            if asked is None and lately.asked_elsewhere:
                verb, verb_en = ("批准", "approve") if approve else ("拒绝", "refuse")
                return say(
                    f"刚才的问题是在另一台音箱上问的，要由被问的人确认。也可以说出要{verb}哪一个。",
                    "That question was asked on another speaker, and only the person asked can"
                    f" confirm it. You can also say which one to {verb_en}.",
                )
            if run is None:  # nothing asked, or that run waits no more: which one?
                if asked:
                    gone = say(
                        "刚才问的修复已经不在等你审批了。",
                        "The fix I asked about no longer waits for you. ",
                    )
                if len(waiting) != 1:
                    return gone + pick_remediation(waiting, "它", english.get())[1]
                run = waiting[0]  # the one waiting: asked about by name, never made unheard
        else:
            picked, question = pick_remediation(waiting, reply.named or which, english.get())
            if picked is None:
                return question
            run = picked
        # Named as the list names it: by what differs from another fix waiting (its cluster).
        about, about_en = run_about(run, among=waiting), run_about(run, True, among=waiting)
        view = await service.seen_status(user, run.remediation_id)
        if view.unanswered:  # which rung waits is the run's to say: none heard, none sent
            return say(
                f"{about}的修复这会儿没有响应，这次什么都没提交。请稍后再试。",
                f"The fix for {about_en} did not answer, so nothing was"
                " sent. Please try again in a moment.",
            )
        if view.waiting is None:  # moved on since the list: what waits now, nobody heard of
            return say(
                f"{about}的修复已经不在等你审批了，这次什么都没提交。",
                f"The fix for {about_en} no longer waits for your approval, so nothing was sent.",
            )
        if not await may_answer(state, user, view.mode):
            # Refused now, as the run would refuse it: asked to confirm first, a user without
            # the permission confirmed only to hear it refused.
            raise RemediationRefusedError(
                f"{user}'s rollback_permission does not reach a {view.mode or 'dry_run'} step "
                "(an admin grants it)"
            )
        rung = int(view.waiting.rung)
        step = step_said(rung, view.mode)
        decision = {"run_key": run.run_key, "rung": rung, "approve": approve}
        # A question back ("你确定吗？") confirms nothing: the question is asked again.
        confirmed = asked is not None and asked["asked"] == decision and reply.said != "question"
        # The decision last made or asked at any device: its run's next rung is new to all.
        last_said = lately.anywhere
        before = last_said.get("made", last_said.get("asked", last_said.get("dropped", {})))
        same = before.get("run_key") == run.run_key and before.get("approve") == approve
        moved_on = same and before.get("rung") != rung  # the run's next rung: nobody heard of it
        # Or an earlier rung of it was answered lately through another door, by this user or
        # another approver (the page, then the speaker: a double answer), which the voice's own
        # notes do not hold: its next rung was decided unasked, a refusal handing it over.
        since = datetime.now(UTC) - CONFIRM_WINDOW
        moved_on = moved_on or any(
            int(d.rung) < rung and d.at is not None and d.at >= since for d in view.approvals
        )
        # Named by nothing with no question of this decision on it ("批准" with one waiting,
        # "不要" to "要批准…吗？" through refuse_remediation): asked, never made unheard.
        unheard = unnamed and not confirmed
        # A question back naming the fix ("批准 checkout 吗？") is asked, never decided.
        asking = unheard or reply.said == "question"
        if (asking or asks_first(len(waiting), moved_on, approve, view.mode)) and not confirmed:
            await _note(state, user, {"asked": decision, "run_key": run.run_key, "reason": reason})
            return ("" if moved_on else gone) + _question(
                waiting, run, approve, step, moved_on=moved_on
            )
        said = reason or (asked["reason"] if asked and confirmed else "")
        # Noted before it is sent: one whose answer comes too late for this call may have been
        # made, and the run's next rung is asked about first.
        await _note(state, user, {"made": decision})
        try:
            # The run asked about and confirmed (its run key), not whichever of the alert's
            # runs is latest when the answer is sent: a next run is not what was heard about.
            async with asyncio.timeout(max(0.5, left())):
                made = await service.approve(
                    user,
                    run.remediation_id,
                    approve,
                    said or "by voice",
                    run_key=run.run_key,
                    rung=rung,
                    via="voice",
                )
        except no_answer.CUT_SHORT:
            verb_zh, verb_en = ("批准", "approval") if approve else ("拒绝", "refusal")
            return say(
                f"对{about}修复的{verb_zh}还没得到确认。稍后问我有什么在等你审批。",
                f"Your {verb_en} of the fix for {about_en} is not confirmed"
                " yet. Ask me later what waits for you.",
            )
        return say(
            f"好的，已{'批准' if made.approve else '拒绝'}{about}修复的{step[0]}。",
            f"OK, {'approved' if made.approve else 'refused'} {step[1]} of the fix for {about_en}.",
        )

    return await answer(ctx, speaker, work)


def asks_first(waiting: int, moved_on: bool, approve: bool, mode: str | None) -> bool:
    """Whether an answer is asked back before it is sent: one of several fixes waiting, a
    run's next step nobody heard of, or an approval of a step that changes the cluster (not
    a dry run's), one fix waiting or many ("批准第一个" approved an isolation the listener
    never heard named)."""
    return waiting > 1 or moved_on or (approve and mode != "dry_run")


def step_said(rung: int, mode: str | None) -> tuple[str, str]:
    """The step a fix waits to have approved, as the voice names it (zh, en): what it does,
    its rung, and a dry run said so ("隔离（第 4 级）", "重启（第 1 级，演练）")."""
    dry = "，演练" if mode == "dry_run" else ""
    name = Rung(rung)
    return f"{RUNG_NAMES_ZH[name]}（第 {rung} 级{dry}）", step_words(name, mode)


def _question(
    waiting: list[RemediationSummary],
    run: RemediationSummary,
    approve: bool,
    step: tuple[str, str],
    *,
    moved_on: bool,
) -> str:
    verb, verb_en = ("批准", "approve") if approve else ("拒绝", "refuse")
    i = waiting.index(run)
    about, about_en = run_about(run, among=waiting), run_about(run, english=True, among=waiting)
    if len(waiting) == 1:  # the one fix: its next step, or a step that changes the cluster
        moved, moved_en = (
            (f"{about}的修复到了下一步，又在等你审批。", f"The fix for {about_en} moved on. ")
            if moved_on
            else ("", "")
        )
        return say(
            f"{moved}要{verb}{about}修复的{step[0]}吗？确认就再说一次{verb}。",
            f"{moved_en}{verb_en.capitalize()} {step[1]} of the fix for {about_en}? Say"
            f" {verb_en} again to confirm.",
        )
    return say(
        f"有 {len(waiting)} 个修复在等你审批。"
        f"要{verb}第{ordinal_word(i)}个，{about}修复的{step[0]}吗？确认就再说一次{verb}。",
        f"{len(waiting)} fixes wait for your approval. {verb_en.capitalize()} number {i + 1},"
        f" {step[1]} of the fix for {about_en}? Say {verb_en} again to confirm.",
    )


async def approve_remediation(ctx: Ctx, which: Reference, speaker: Spoken = None) -> str:
    """Approve the waiting remediation ``which`` names."""
    return await _decide(ctx, which, True, "", speaker)


async def refuse_remediation(
    ctx: Ctx,
    which: Reference,
    reason: Annotated[
        str, AsText, Field(default="", max_length=200, description="原因 / reason")
    ] = "",
    speaker: Spoken = None,
) -> str:
    """Refuse the waiting remediation ``which`` names."""
    return await _decide(ctx, which, False, reason, speaker)
