"""A remediation's discussion belongs to one run: the same alert again later, remediated for
someone else, neither joins nor shows the earlier run's discussion."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from sqlalchemy import select, update
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.discussions import DiscussionActivities
from ambient.deps import WorkerDeps
from ambient.discussions.rules import AgentPost, MessageIn, remediation_post_id
from ambient.discussions.service import DiscussionService
from ambient.remediation.service import RemediationService
from ambient.remediation.views import RemediationView
from ambient.storage.models import Discussion, DiscussionMessage
from tests.conftest import unique
from tests.discussions.test_scoping import _server
from tests.discussions.test_tools import _server as _wired
from tests.discussions.test_tools import _users, call, refused
from tests.remediation.support import (
    add_user,
    alert,
    remediation_settings,
    remediations_with_worker,
    run_row,
)
from tests.support.waits import eventually


async def _run(deps: WorkerDeps, rid: str, run: str, owner: str, state: str) -> None:
    async with deps.db.session() as session:
        session.add(run_row(rid, owner, run, state=state))
        await session.commit()


async def _plan_posted_by_run(deps: WorkerDeps, rid: str, run: str, content: str) -> str:
    """The plan as the run's workflow posts it (the activity, in that run)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=rid, workflow_run_id=run)
    post = AgentPost(
        agent_id="remediation",
        topic="Remediation of checkout",
        content=content,
        subject=rid,
        tags=["plan"],
        message_id=unique("rem"),
    )
    acts = DiscussionActivities(deps.db, deps.settings)
    return (await env.run(acts.post_to_discussion, post)).discussion_id


async def test_the_same_alert_remediated_later_for_another_user_keeps_the_runs_apart(
    deps: WorkerDeps,
) -> None:
    carol, dave = unique("carol"), unique("dave")
    await _users(deps, carol, dave)
    rid = f"remediation/{unique('fp')}"
    await _run(deps, rid, "run-1", carol, "resolved")
    carols = await _plan_posted_by_run(deps, rid, "run-1", "plan: roll back, carol's secret")
    # The alert fires again next week; this time it is remediated for dave.
    await _run(deps, rid, "run-2", dave, "waiting_approval")
    daves = await _plan_posted_by_run(deps, rid, "run-2", "plan: restart, dave's secret")

    assert daves != carols, "the later run posted into the earlier run's discussion"
    async with (
        Client(_server(deps, carol)) as as_carol,
        Client(_server(deps, dave)) as as_dave,
    ):
        seen_by_dave = await call(as_dave, "list_discussions")
        seen_by_carol = await call(as_carol, "list_discussions")
        assert [d["id"] for d in seen_by_dave["discussions"]] == [daves]
        assert [d["id"] for d in seen_by_carol["discussions"]] == [carols]
        assert "no discussion" in await refused(as_dave, "read_discussion", discussion_id=carols)
        read = await call(as_dave, "read_discussion", discussion_id=daves)
        assert [m["content"] for m in read["messages"]] == ["plan: restart, dave's secret"]


async def _approve_in(
    dev_env: WorkflowEnvironment,
    deps: WorkerDeps,
    discussion_of: Callable[[str, str], Awaitable[str]],
) -> tuple[dict[str, Any], RemediationView]:
    """This week's run of an alert waiting for approval, and its owner's approve in the
    discussion ``discussion_of(rid, owner)`` stores: the reply's action and the run after it."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner = unique("runs-ops")
    await add_user(deps, owner, permission="dry_run")
    async with remediations_with_worker(dev_env, deps, healthy_from=1) as (
        url,
        settings,
        remediations,
    ):
        subject = alert(url, workload=owner, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "dry_run")).remediation_id
        discussion = await discussion_of(rid, owner)

        async def waiting() -> bool:
            return (await remediations.get(owner, rid)).state == "waiting_approval"

        await eventually(waiting, "this week's run waits for approval")
        bus = DiscussionService(deps.db, settings, dev_env.client, remediations)
        reply = MessageIn(from_id=owner, content="approved", tags=["approve"])
        answered = await bus.reply_message(owner, discussion, reply)
        view = await remediations.get(owner, rid)
        await dev_env.client.get_workflow_handle(rid).terminate()
    assert answered.action is not None, answered
    return answered.action, view


async def test_a_reply_in_an_earlier_runs_discussion_does_not_steer_the_current_run(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """The same alert remediated again: approve in last week's discussion is about last
    week's run, and must not approve this week's plan nobody has read there."""

    async def last_weeks(rid: str, owner: str) -> str:
        # Last week's run of the same alert, ended, its discussion still open.
        await _run(deps, rid, "run-last-week", owner, "resolved")
        earlier = await _plan_posted_by_run(deps, rid, "run-last-week", "plan: roll back")
        async with deps.db.session() as session:  # read minutes ago: the reply is no reflex
            await session.execute(
                update(DiscussionMessage)
                .where(DiscussionMessage.discussion_id == earlier)
                .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
            )
            await session.commit()
        return earlier

    action, view = await _approve_in(dev_env, deps, last_weeks)
    assert action["done"] is False and "earlier run" in action["reason"], action
    assert view.state == "waiting_approval" and view.approvals == []


async def test_a_reply_in_a_discussion_opened_before_runs_had_their_own_does_not_steer(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A discussion stored by a release before runs were told apart names the alert
    (remediation/{fingerprint}), not a run: approve there was about whichever run was then,
    and must not approve the alert's current run, whose plan nobody read there."""

    async def stored_before(rid: str, owner: str) -> str:
        # As the release before stored it: its subject the alert's id, no run named.
        old, long_ago = unique("disc")[:64], datetime.now(UTC) - timedelta(days=7)
        async with deps.db.session() as session:
            session.add(
                Discussion(
                    id=old,
                    topic="Remediation of checkout",
                    topic_key=unique("remediation of checkout"),
                    initiator="remediation",
                    status="open",
                    subject=rid,
                    created_at=long_ago,
                    updated_at=long_ago,
                )
            )
            session.add(
                DiscussionMessage(
                    id=unique("plan")[:64],
                    discussion_id=old,
                    from_id="remediation",
                    content="plan: roll back",
                    created_at=long_ago,
                )
            )
            await session.commit()
        return old

    action, view = await _approve_in(dev_env, deps, stored_before)
    assert action["done"] is False and "before each run" in action["reason"], action
    assert view.state == "waiting_approval" and view.approvals == []


async def test_closing_a_discussion_one_may_not_close_says_who_may(deps: WorkerDeps) -> None:
    """The owner of a run reads its discussion (opened by the remediation agent) and tries to
    close it: the refusal spoke of signing and a from_id close_discussion does not take."""
    erin = unique("erin")
    await _users(deps, erin)
    rid = f"remediation/{unique('fp')}"
    await _run(deps, rid, "run-1", erin, "resolved")
    theirs = await _plan_posted_by_run(deps, rid, "run-1", "plan: restart")
    async with Client(_server(deps, erin)) as as_erin:
        said = await refused(as_erin, "close_discussion", discussion_id=theirs)
        read = await call(as_erin, "read_discussion", discussion_id=theirs)
    assert "from_id" not in said and "sign" not in said, said
    assert "close" in said and "remediation" in said and "admin" in said, said
    assert read["discussion"]["status"] == "open"


async def test_a_reply_tagged_approve_in_any_case_is_read_as_an_approval(deps: WorkerDeps) -> None:
    """The page's tags field is typed by hand (a phone capitalises the first letter): a reply
    tagged 'Approve' was posted as a plain message, the page said "Posted", and the run went on
    waiting for an approval its owner believed given."""
    fay = unique("fay")
    await _users(deps, fay)
    rid = f"remediation/{unique('fp')}"
    await _run(deps, rid, "run-1", fay, "waiting_approval")
    theirs = await _plan_posted_by_run(deps, rid, "run-1", "plan: restart")
    bus = DiscussionService(deps.db, deps.settings)
    for tag, verb in (("Approve", "approve"), ("REFUSE", "refuse"), ("Abort", "abort")):
        reply = MessageIn(from_id=fay, content=f"{tag}!", tags=[tag])
        posted = await bus.reply_message(fay, theirs, reply)
        assert posted.action is not None and posted.action["verb"] == verb, (tag, posted)


async def test_an_approve_sent_on_a_remediations_topic_says_it_did_not_act(
    deps: WorkerDeps,
) -> None:
    """send_message on the run's topic joins its discussion, tagged approve: it was posted with
    no action and no word why, where the same words as a reply act."""
    gil = unique("gil")
    await _users(deps, gil)
    rid = f"remediation/{unique('fp')}"
    await _run(deps, rid, "run-1", gil, "waiting_approval")
    theirs = await _plan_posted_by_run(deps, rid, "run-1", "plan: restart")
    bus = DiscussionService(deps.db, deps.settings)
    sent = MessageIn(from_id=gil, content="go ahead", tags=["approve"])
    posted = await bus.send_message(gil, "Remediation of checkout", sent)
    assert posted.discussion_id == theirs and posted.created_discussion is False
    assert posted.action is not None and posted.action["done"] is False, posted
    assert posted.action["verb"] == "approve" and "reply_message" in posted.action["reason"]
    plain = await bus.send_message(
        gil, "Remediation of checkout", MessageIn(from_id=gil, content="hm")
    )
    assert plain.action is None


async def test_a_reply_tagged_auto_reply_does_not_act(deps: WorkerDeps) -> None:
    """A message tagged auto_reply is machine-written by the analysis' own rule (annotate marks
    it inferred), yet tagged approve as well, minutes after the question, it acted on the run."""
    hal = unique("hal")
    await _users(deps, hal)
    rid = f"remediation/{unique('fp')}"
    await _run(deps, rid, "run-1", hal, "waiting_approval")
    theirs = await _plan_posted_by_run(deps, rid, "run-1", "plan: restart")
    async with deps.db.session() as session:  # the plan was posted minutes ago
        await session.execute(
            update(DiscussionMessage)
            .where(DiscussionMessage.discussion_id == theirs)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
        )
        await session.commit()
    bus = DiscussionService(deps.db, deps.settings)
    for tags in (["approve", "auto_reply"], ["Auto_Reply", "abort"]):
        reply = MessageIn(from_id=hal, content="ack", tags=tags)
        posted = await bus.reply_message(hal, theirs, reply)
        assert posted.action is not None and posted.action["done"] is False, posted
        assert "machine-inferred" in posted.action["reason"], (tags, posted.action)


async def test_a_reply_to_a_rungs_approval_request_does_not_approve_the_next_rung(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """Rung 1's request approved by an admin on the page; the owner's reply to that request in
    the discussion, written later, approved rung 2 instead, which nobody had read about. The
    request the reply answers names its rung, as the page's buttons and the API's rung do."""
    owner, admin = await owner_and_admin(deps, "rung")
    async with remediations_with_worker(dev_env, deps) as (url, settings, remediations):
        subject = alert(url, workload=owner, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "dry_run")).remediation_id

        async def waits_on(rung: int) -> bool:
            view = await remediations.get(owner, rid)
            return view.waiting is not None and int(view.waiting.rung) == rung

        await eventually(
            lambda: rung_waits(remediations, owner, rid, 1), "rung 1 waits for approval"
        )
        run_key = (await remediations.get(owner, rid)).run_key
        await remediations.approve(admin, rid, True, "on the page", rung=1, via="web")
        request = remediation_post_id(f"{run_key}#1/approval-request")

        async def posted(key: str) -> bool:
            async with deps.db.session() as session:
                return await session.get(DiscussionMessage, remediation_post_id(key)) is not None

        # Rung 2's own request posted too: the thread is quiet when the reply comes.
        await eventually(
            lambda: is_posted(deps, f"{run_key}#2/approval-request"), "rung 2 is asked"
        )
        async with deps.db.session() as session:
            asked = await session.get(DiscussionMessage, request)
            assert asked is not None, "rung 1's approval request was not posted"
            await session.execute(  # read minutes ago: the reply is no reflex
                update(DiscussionMessage)
                .where(DiscussionMessage.discussion_id == asked.discussion_id)
                .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
            )
            await session.commit()
        bus = DiscussionService(deps.db, settings, dev_env.client, remediations)
        reply = MessageIn(from_id=owner, content="ok", tags=["approve"], reply_to=request)
        answered = await bus.reply_message(owner, asked.discussion_id, reply)
        assert answered.action is not None and answered.action["done"] is False
        assert "rung 1 of" in answered.action["reason"], answered.action
        view = await remediations.get(owner, rid)
        assert view.state == "waiting_approval" and [int(a.rung) for a in view.approvals] == [1]
        await dev_env.client.get_workflow_handle(rid).terminate()


async def owner_and_admin(deps: WorkerDeps, prefix: str) -> tuple[str, str]:
    """Rung 1 asks approval; a new owner (dry runs) and an admin of ``prefix``."""
    remediation_settings(deps, remediation_approval_from_rung=1)
    owner, admin = unique(f"{prefix}-ops"), unique(f"{prefix}-admin")
    await add_user(deps, owner, permission="dry_run")
    await add_user(deps, admin, permission="dry_run", role="admin")
    return owner, admin


async def rung_waits(remediations: RemediationService, owner: str, rid: str, rung: int) -> bool:
    view = await remediations.get(owner, rid)
    return view.waiting is not None and int(view.waiting.rung) == rung


async def is_posted(deps: WorkerDeps, key: str) -> bool:
    """Whether the run's post of ``key`` is stored."""
    async with deps.db.session() as session:
        return await session.get(DiscussionMessage, remediation_post_id(key)) is not None


async def rung_one_asked_minutes_ago(
    deps: WorkerDeps, remediations: RemediationService, owner: str, url: str
) -> tuple[str, str, str]:
    """A dry run of ``owner``'s whose rung 1 waits for approval, its request posted (and the
    discussion's messages dated minutes ago: an answer now is no reflex): the run's id, the
    request's message id and the discussion's id."""
    rid = (
        await remediations.start(owner, alert(url, workload=owner, settle_seconds=0), "dry_run")
    ).remediation_id

    async def waits() -> bool:
        return (await remediations.get(owner, rid)).waiting is not None

    await eventually(waits, "rung 1 waits for approval")
    run_key = (await remediations.get(owner, rid)).run_key
    request = remediation_post_id(f"{run_key}#1/approval-request")

    async def asked() -> bool:
        async with deps.db.session() as session:
            return await session.get(DiscussionMessage, request) is not None

    await eventually(asked, "rung 1's approval request is posted")
    async with deps.db.session() as session:
        found = await session.get(DiscussionMessage, request)
        assert found is not None
        await session.execute(
            update(DiscussionMessage)
            .where(DiscussionMessage.discussion_id == found.discussion_id)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
        )
        await session.commit()
        return rid, request, found.discussion_id


async def test_a_member_posting_non_stop_does_not_keep_an_approval_from_acting(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A reply within 2 s after anyone else's message was taken as machine-inferred: a member
    posting non-stop in a run's discussion made every approval in it "fast", and the run waited
    for an answer its owner had given. What a reply answers counts (the message it replies to,
    the run's own posts), not other members' chatter."""
    owner, chatty = await owner_and_admin(deps, "spam")
    async with remediations_with_worker(dev_env, deps) as (url, settings, remediations):
        rid, request, discussion = await rung_one_asked_minutes_ago(deps, remediations, owner, url)
        async with (
            Client(_wired(settings, deps, dev_env, chatty)) as as_chatty,
            Client(_wired(settings, deps, dev_env, owner)) as as_owner,
        ):
            for n in range(3):  # the member's latest is a moment before the owner's answer
                said = f"still 5xx? ({n})"
                await call(
                    as_chatty,
                    "reply_message",
                    discussion_id=discussion,
                    from_id=chatty,
                    content=said,
                )
            answer = await call(
                as_owner,
                "reply_message",
                discussion_id=discussion,
                from_id=owner,
                content="go ahead",
                tags=["approve"],
                reply_to=request,
            )
        # The step it answered, as every door names it (the page's flash says it).
        assert answer["action"] == {
            "remediation_id": rid,
            "verb": "approve",
            "done": True,
            "rung": 1,
            "mode": "dry_run",
        }

        async def approved() -> bool:
            view = await remediations.get(owner, rid)
            return any(a.approve and a.approver == owner for a in view.approvals)

        await eventually(approved, "the owner's approval reached the run")
        await dev_env.client.get_workflow_handle(rid).terminate()


async def test_an_admin_posting_as_the_runs_agent_does_not_make_an_approval_look_fast(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """An admin may post as a product agent ("remediation"): what they typed there a moment
    before the owner's answer was counted as the run's own post, so the owner's approval
    (to a request asked minutes ago) looked machine-inferred, did not act, and
    annotate_discussion marked it auto_reply. Only the run's own posts are what it answers."""
    owner, admin = await owner_and_admin(deps, "agent")
    async with remediations_with_worker(dev_env, deps) as (url, settings, remediations):
        rid, request, discussion = await rung_one_asked_minutes_ago(deps, remediations, owner, url)
        async with (
            Client(_wired(settings, deps, dev_env, admin)) as as_admin,
            Client(_wired(settings, deps, dev_env, owner)) as as_owner,
        ):
            await call(
                as_admin,
                "reply_message",
                discussion_id=discussion,
                from_id="remediation",
                content="the on-call rota changed, FYI",
            )
            answer = await call(
                as_owner,
                "reply_message",
                discussion_id=discussion,
                from_id=owner,
                content="go ahead",
                tags=["approve"],
                reply_to=request,
            )
            assert answer["action"]["done"] is True and answer["action"]["rung"] == 1
            found_fast = await call(as_admin, "detect_anomalies", discussion_id=discussion)
            annotated = await call(as_admin, "annotate_discussion", discussion_id=discussion)
        assert answer["message_id"] not in {a["message_id"] for a in found_fast["anomalies"]}
        assert answer["message_id"] not in {c["message_id"] for c in annotated["changed"]}

        async def approved() -> bool:
            view = await remediations.get(owner, rid)
            return any(a.approve and a.approver == owner for a in view.approvals)

        await eventually(approved, "the owner's approval reached the run")
        await dev_env.client.get_workflow_handle(rid).terminate()


@pytest.mark.parametrize("on_the_request", [True, False])
async def test_a_reply_to_a_members_remark_on_a_rungs_request_does_not_approve_the_next_rung(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, on_the_request: bool
) -> None:
    """The rung a reply approved was read from its reply_to alone: a reply to a colleague's
    remark made while rung 1 was asked (a reply to its request, or said in the thread then)
    named no rung, so it approved whichever rung waited by then, rung 2, which that remark
    was not about. The request its reply chain leads to is the one it answers, else the
    latest asked before the chain began."""
    owner, admin = await owner_and_admin(deps, "chain")
    async with remediations_with_worker(dev_env, deps) as (url, settings, remediations):
        subject = alert(url, workload=owner, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "dry_run")).remediation_id

        await eventually(
            lambda: rung_waits(remediations, owner, rid, 1), "rung 1 waits for approval"
        )
        run_key = (await remediations.get(owner, rid)).run_key
        request = remediation_post_id(f"{run_key}#1/approval-request")
        await eventually(
            lambda: is_posted(deps, f"{run_key}#1/approval-request"), "rung 1 is asked"
        )
        async with deps.db.session() as session:
            asked = await session.get(DiscussionMessage, request)
            assert asked is not None
            discussion = asked.discussion_id
        async with Client(_wired(settings, deps, dev_env, admin)) as as_admin:
            remark = await call(
                as_admin,
                "reply_message",
                discussion_id=discussion,
                from_id=admin,
                content="a restart looks safe to me",
                reply_to=request if on_the_request else None,
            )
        await remediations.approve(admin, rid, True, "on the page", rung=1, via="web")
        await eventually(
            lambda: is_posted(deps, f"{run_key}#2/approval-request"), "rung 2 is asked"
        )
        async with deps.db.session() as session:  # read minutes ago: the reply is no reflex
            thread = DiscussionMessage.discussion_id == discussion
            for row in await session.scalars(select(DiscussionMessage).where(thread)):
                row.created_at -= timedelta(minutes=5)  # in the order they were posted
            await session.commit()
        async with Client(_wired(settings, deps, dev_env, owner)) as as_owner:
            answer = await call(
                as_owner,
                "reply_message",
                discussion_id=discussion,
                from_id=owner,
                content="agreed",
                tags=["approve"],
                reply_to=remark["message_id"],
            )
        assert answer["action"]["done"] is False, answer
        assert "rung 1 of" in answer["action"]["reason"], answer["action"]
        view = await remediations.get(owner, rid)
        assert view.state == "waiting_approval" and [int(a.rung) for a in view.approvals] == [1]
        await dev_env.client.get_workflow_handle(rid).terminate()


@pytest.mark.parametrize(
    ("through_a_remark", "rungs_asked"), [(False, 2), (True, 2), (False, 1), (True, 1)]
)
async def test_a_reply_to_the_runs_plan_after_two_rungs_were_asked_does_not_approve_one(
    dev_env: WorkflowEnvironment, deps: WorkerDeps, through_a_remark: bool, rungs_asked: int
) -> None:
    """A reply whose chain began before any rung was asked (on the run's plan, or on a
    colleague's remark on it) was said under no request: it approved whichever rung waited by
    then (rung 2, after rung 1 was asked and approved), which nobody replying there had read
    about. It is refused and says to reply to the rung's request; the run waits on. With one
    rung asked so far, it can mean only that one, and approves it (the first reply to a plan)."""
    owner, admin = await owner_and_admin(deps, "plan")
    async with remediations_with_worker(dev_env, deps) as (url, settings, remediations):
        subject = alert(url, workload=owner, settle_seconds=0)
        rid = (await remediations.start(owner, subject, "dry_run")).remediation_id

        await eventually(
            lambda: rung_waits(remediations, owner, rid, 1), "rung 1 waits for approval"
        )
        run_key = (await remediations.get(owner, rid)).run_key
        await eventually(
            lambda: is_posted(deps, f"{run_key}#1/approval-request"), "rung 1 is asked"
        )
        plan = remediation_post_id(f"{run_key}/plan")
        async with deps.db.session() as session:
            planned = await session.get(DiscussionMessage, plan)
            assert planned is not None
            discussion = planned.discussion_id
        if rungs_asked == 2:
            await remediations.approve(admin, rid, True, "on the page", rung=1, via="web")
            await eventually(
                lambda: is_posted(deps, f"{run_key}#2/approval-request"), "rung 2 is asked"
            )
        answered = plan
        if through_a_remark:
            async with Client(_wired(settings, deps, dev_env, admin)) as as_admin:
                remark = await call(
                    as_admin,
                    "reply_message",
                    discussion_id=discussion,
                    from_id=admin,
                    content="the plan looks sound",
                    reply_to=plan,
                )
            answered = remark["message_id"]
        async with deps.db.session() as session:  # read minutes ago: the reply is no reflex
            thread = DiscussionMessage.discussion_id == discussion
            for row in await session.scalars(select(DiscussionMessage).where(thread)):
                row.created_at -= timedelta(minutes=5)  # in the order they were posted
            await session.commit()
        async with Client(_wired(settings, deps, dev_env, owner)) as as_owner:
            answer = await call(
                as_owner,
                "reply_message",
                discussion_id=discussion,
                from_id=owner,
                content="go ahead",
                tags=["approve"],
                reply_to=answered,
            )
        view = await remediations.get(owner, rid)
        if rungs_asked == 1:
            assert answer["action"]["done"] is True, answer
            assert [(int(a.rung), a.approver) for a in view.approvals] == [(1, owner)]
        else:
            assert answer["action"]["done"] is False, answer
            assert "before any rung was asked" in answer["action"]["reason"], answer["action"]
            assert view.state == "waiting_approval"
            assert [int(a.rung) for a in view.approvals] == [1]
        await dev_env.client.get_workflow_handle(rid).terminate()
