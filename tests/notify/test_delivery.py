from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text, update
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.deliveries import (
    GIVEN_UP,
    HANDING,
    MAX_KEY,
    RowPosts,
    delivery_key,
    give_up,
)
from activities.notify import NotifyActivities
from ambient.clients.notify.registry import build_channels
from ambient.deps import WorkerDeps
from ambient.domain.notify import (
    CHANNEL_TYPES,
    HANDED_UNANSWERED,
    DeliveryStatus,
    Message,
    NotificationKind,
    NotifyRequest,
    NotifyResult,
    Target,
    redact_target,
)
from ambient.domain.push import PushConfig
from ambient.domain.users import Language, UserCreate
from ambient.setting_types import ServerSecret
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.models import Delivery, User
from ambient.storage.repositories import DeliveryRepository, EventRepository, InboxRepository
from ambient.storage.users import UserRepository
from ambient.watches.reminders import ReminderConfig, ReminderRun
from tests.conftest import running_worker, unique
from tests.notify.standins import WEBHOOK_SECRET, WECOM_KEY, Mailbox, PushEndpoints
from tests.notify.workflows import SendOnceWorkflow
from tests.support.deliveries import left_in_flight
from tests.support.record import save_history
from workflows.reminder import ReminderWorkflow


def _settings(settings: Settings, base: str) -> Settings:
    return settings.model_copy(
        update={
            "wecom_base_url": base,
            "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
            "fetch_allow_cidrs": ["127.0.0.1/32"],
            "secrets": {
                "ops-bot": ServerSecret(value=SecretStr(WECOM_KEY), users=["alice"]),
                "hook": ServerSecret(value=SecretStr(f"{base}/hook"), users=["alice"]),
            },
        }
    )


async def _user(db: Database, name: str, **fields: object) -> None:
    async with db.session() as session:
        await UserRepository(session).create(UserCreate(name=name, **fields))  # type: ignore[arg-type]
        await session.commit()


async def _alice_pushing(deps: WorkerDeps, base: str) -> NotifyActivities:
    """User alice, and ``deps``' settings and channels aimed at the push endpoints at ``base``:
    the notify activities over them."""
    await _user(deps.db, "alice")
    deps.settings = _settings(deps.settings, base)
    deps.channels = build_channels(deps.settings, deps.db, deps.http)
    return NotifyActivities(deps.db, deps.channels)


async def _reminded(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, task: str, config: ReminderConfig
) -> str:
    """One run of alice's reminder ``task`` (workflow id ``task``/run) on a worker: its body."""
    async with running_worker(ts_env.client, deps) as worker:
        return await ts_env.client.execute_workflow(
            ReminderWorkflow.run,
            ReminderRun(user="alice", task=task, config=config),
            id=f"{task}/run",
            task_queue=worker.task_queue,
        )


def _quiet_now(zone: str) -> dict[str, str]:
    """Quiet hours from the hour before now to two hours on, in ``zone``: a test that began
    at 10:59:59 is still inside them when its send reads them (a window of this hour alone
    ended under a send that came a moment later, on the hour)."""
    hour = datetime.now(ZoneInfo(zone)).hour
    return {"start": f"{(hour - 1) % 24:02d}:00", "end": f"{(hour + 2) % 24:02d}:00"}


async def _set_push(db: Database, name: str, config: dict[str, object]) -> None:
    async with db.session() as session:
        users = UserRepository(session)
        user = await users.get(name)
        assert user is not None
        await users.set_push_config(user, PushConfig.model_validate(config).model_dump(mode="json"))
        await session.commit()


async def _lease_over(db: Database, key: str) -> None:
    """The lease of the delivery ``key`` ended (its holder died): a give-up may take it."""
    async with db.writing() as session:
        row = await DeliveryRepository(session).get(key)
        assert row is not None
        await DeliveryRepository(session).hold(
            key, row.attempts, datetime.now(UTC) - timedelta(seconds=1)
        )


def _mailing(deps: WorkerDeps, mailbox: Mailbox) -> NotifyActivities:
    """The notify activities over ``deps``, email sent to ``mailbox``."""
    deps.settings = deps.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port, "smtp_tls": "none"}
    )
    return NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))


def _request(
    key: str, *targets: Target, kind: NotificationKind = NotificationKind.WATCH
) -> NotifyRequest:
    return NotifyRequest(
        user="alice",
        message=Message(title="Disk 91%", body="node-3", kind=kind),
        targets=list(targets),
        idempotency_key=key,
    )


async def test_a_crash_after_sending_does_not_send_twice(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    notify = await _alice_pushing(deps, base)

    @activity.defn(name="notify_under_test")
    async def crash_after_first_send(request: NotifyRequest) -> NotifyResult:
        result = await notify.notify(request)
        if activity.info().attempt == 1:
            raise RuntimeError("worker died before reporting completion")
        return result

    async with running_worker(
        ts_env.client, deps, workflows=[SendOnceWorkflow], activities=[crash_after_first_send]
    ) as worker:
        result = await ts_env.client.execute_workflow(
            SendOnceWorkflow.run,
            _request(
                unique("wf"),
                Target(type="webhook", target="secret:hook"),
                Target(type="wecom", target="secret:ops-bot"),
            ),
            id=unique("send"),
            task_queue=worker.task_queue,
        )
    assert [d.status for d in result.deliveries] == [
        DeliveryStatus.DUPLICATE,
        DeliveryStatus.DUPLICATE,
    ]
    # One notify sends to its targets at once: each exactly once, in either order.
    assert sorted(name for name, _ in state.received) == ["webhook", "wecom"]


async def test_a_failing_channel_neither_blocks_others_nor_repeats_them(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    notify = await _alice_pushing(deps, base)
    state.failures["wecom"] = ["500", "500"]  # transient twice, then fine

    @activity.defn(name="notify_under_test")
    async def plain(request: NotifyRequest) -> NotifyResult:
        return await notify.notify(request)

    key = unique("wf")
    async with running_worker(
        ts_env.client, deps, workflows=[SendOnceWorkflow], activities=[plain]
    ) as worker:
        result = await ts_env.client.execute_workflow(
            SendOnceWorkflow.run,
            _request(
                key,
                Target(type="webhook", target="secret:hook"),
                Target(type="wecom", target="secret:ops-bot"),
                Target(type="email", target="not-an-address"),
            ),
            id=unique("send"),
            task_queue=worker.task_queue,
        )
    statuses = {d.channel: d.status for d in result.deliveries}
    assert statuses == {
        "webhook": DeliveryStatus.DUPLICATE,
        "wecom": DeliveryStatus.SENT,
        "email": DeliveryStatus.FAILED,
    }
    assert sorted(name for name, _ in state.received) == ["webhook", "wecom"]  # each once
    async with deps.db.session() as session:
        rows = {
            r.channel: r
            for r in (
                await session.execute(select(Delivery).where(Delivery.key.startswith(key)))
            ).scalars()
        }
    assert rows["wecom"].attempts == 3 and rows["wecom"].status == "sent"
    assert (
        rows["email"].attempts == 1
        and rows["email"].error is not None
        and rows["email"].error.startswith("permanent:")
    )
    assert "secret:hook" in rows["webhook"].target and state.received[0][1][
        "idempotency_key"
    ].startswith(key)


async def test_push_config_adds_channels_by_kind_and_fills_missing_addresses(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice", email="alice@example.com")
    await _set_push(
        deps.db,
        "alice",
        {
            "channels": [
                {"type": "wecom", "target": "secret:ops-bot", "kinds": ["remediation"]},
                {"type": "webhook", "target": "secret:hook", "kinds": ["watch"]},
            ]
        },
    )
    deps.settings = _settings(deps.settings, base)
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    env = ActivityEnvironment()
    watch = await env.run(notify.notify, _request("k1", Target(type="inbox")))
    assert [(d.channel, d.status) for d in watch.deliveries] == [
        ("inbox", "sent"),
        ("webhook", "sent"),
    ]
    remediation = await env.run(notify.notify, _request("k2", kind=NotificationKind.REMEDIATION))
    assert [(d.channel, d.status) for d in remediation.deliveries] == [("wecom", "sent")]
    # {"method": "email"} without an address uses the user's email (no SMTP here: said plainly).
    email = await env.run(notify.notify, _request("k3", Target(type="email")))
    assert [name for name, _ in state.received] == ["webhook", "wecom", "webhook"]
    sent_email = next(d for d in email.deliveries if d.channel == "email")
    assert sent_email.target == "alice@example.com"
    assert "AMBIENT_SMTP_HOST" in (sent_email.error or "")


async def test_an_email_send_with_no_address_anywhere_says_the_profile_has_none(
    deps: WorkerDeps,
) -> None:
    """A task made while its owner's profile had an email, removed since (its updates are not
    refused for it): each alert's email delivery fails saying where an address would come
    from, the profile among them (it said only the task and the push config)."""
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    sent = await ActivityEnvironment().run(
        notify.notify, _request("nowhere", Target(type="email"), Target(type="sms"))
    )
    errors = {d.channel: d.error for d in sent.deliveries if d.status == DeliveryStatus.FAILED}
    assert errors == {
        "email": "permanent: no email target for alice: give one in the task or in the push "
        "config (set_push_config), or set the email in the profile (it has none)",
        "sms": "permanent: no sms target for alice: give one in the task or in the push "
        "config (set_push_config), or set the phone in the profile (it has none)",
    }


async def test_quiet_hours_hold_back_pushes_but_not_the_inbox(deps: WorkerDeps) -> None:
    await _user(deps.db, "alice", timezone="Asia/Shanghai")
    await _set_push(
        deps.db,
        "alice",
        {
            "channels": [{"type": "webhook", "target": "https://hooks.example/x"}],
            "quiet_hours": _quiet_now("Asia/Shanghai"),
        },
    )
    notify = NotifyActivities(deps.db, deps.channels)
    result = await ActivityEnvironment().run(notify.notify, _request("q1", Target(type="inbox")))
    assert [(d.channel, d.status) for d in result.deliveries] == [
        ("inbox", "sent"),
        ("webhook", "suppressed"),
    ]


async def test_a_refused_webhook_fails_its_delivery_not_the_workflow(
    ts_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))

    @activity.defn(name="notify_under_test")
    async def plain(request: NotifyRequest) -> NotifyResult:
        return await notify.notify(request)

    async with running_worker(
        ts_env.client, deps, workflows=[SendOnceWorkflow], activities=[plain]
    ) as worker:
        result = await ts_env.client.execute_workflow(
            SendOnceWorkflow.run,
            _request(
                unique("wf"),
                Target(type="webhook", target="http://127.0.0.1:9/hook"),
                Target(type="inbox"),
            ),
            id=unique("send"),
            task_queue=worker.task_queue,
        )
    (failed,) = result.failures
    assert failed.channel == "webhook" and "loopback" in (failed.error or "")
    assert [d.status for d in result.deliveries] == [DeliveryStatus.FAILED, DeliveryStatus.SENT]


async def test_a_reminder_is_titled_in_the_servers_language_for_a_user_who_chose_none(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    deps.settings = deps.settings.model_copy(update={"default_language": Language.ZH})
    await _alice_pushing(deps, base)
    config = ReminderConfig.model_validate(
        {
            "message": "站会",
            "cron": "30 9 * * 1-5",
            "targets": [{"type": "webhook", "target": "secret:hook"}],
        }
    )
    task = unique("reminder/alice/standup")
    assert await _reminded(ts_env, deps, task, config) == "站会"
    assert [(body["title"], body["body"]) for _, body in state.received] == [("提醒", "站会")]
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list("alice")
        events = await EventRepository(session).list(user="alice")
    assert [(m.title, m.body) for m in inbox] == [("提醒", "站会")]
    # The event recorded with it keeps the message's English.
    assert [e.payload["title"] for e in events if e.kind == "schedule.reminder"] == ["Reminder"]


async def test_a_reminder_whose_one_channel_fails_still_delivers_the_others_and_records_it(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _alice_pushing(deps, base)
    # The WeCom delivery's row cannot be written (a refusing trigger: a real database error
    # that is not "busy"), so that one target fails outside its send.
    async with deps.db.session() as session:
        await session.execute(
            text(
                "CREATE TRIGGER refuse_wecom BEFORE INSERT ON deliveries "
                "WHEN NEW.channel = 'wecom' BEGIN SELECT RAISE(ABORT, 'wecom refused'); END"
            )
        )
        await session.commit()
    config = ReminderConfig.model_validate(
        {
            "message": "站会",
            "cron": "30 9 * * 1-5",
            "targets": [
                {"type": "wecom", "target": "secret:ops-bot"},
                {"type": "webhook", "target": "secret:hook"},
            ],
        }
    )
    task = unique("reminder/alice/standup")
    body = await _reminded(ts_env, deps, task, config)
    await save_history(ts_env.client.get_workflow_handle(f"{task}/run"), "reminder_delivery_failed")
    assert body == "站会"
    assert [name for name, _ in state.received] == ["webhook"]
    async with deps.db.session() as session:
        inbox = await InboxRepository(session).list("alice")
        events = await EventRepository(session).list(user="alice")
    assert [m.title for m in inbox] == ["Reminder"]
    (failed,) = [e for e in events if e.kind == "schedule.delivery_failed"]
    assert failed.payload["failed"] == 1
    assert [e.split(":")[0] for e in failed.payload["errors"]] == ["wecom"]
    assert "internal error" in failed.payload["errors"][0]


async def test_a_reminder_counts_every_failed_channel_when_one_is_still_failing_at_its_last_try(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _alice_pushing(deps, base)
    # One webhook answers 500 to every try (transient to the end); the other redirects,
    # refused at its first try (permanent).
    state.failures["webhook"] = ["500"] * 10
    config = ReminderConfig.model_validate(
        {
            "message": "站会",
            "targets": [
                {"type": "webhook", "target": f"{base}/hook"},
                {"type": "webhook", "target": f"{base}/moved"},
            ],
        }
    )
    task = unique("reminder/alice/standup")
    await _reminded(ts_env, deps, task, config)
    async with deps.db.session() as session:
        events = await EventRepository(session).list(user="alice")
    (failed,) = [e for e in events if e.kind == "schedule.delivery_failed"]
    # Both failed deliveries are counted and named, not the last try's transient one alone.
    assert failed.payload["failed"] == 2
    errors = sorted(failed.payload["errors"])
    assert errors[0].startswith("webhook: permanent: HTTP 307") and "redirects" in errors[0]
    assert errors[1] == "webhook: transient: HTTP 500"


async def test_two_long_request_keys_that_differ_only_at_the_end_are_two_deliveries(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    # A briefing send's key is daily-briefing/<user>/<life>/<date>/send/<request id>: a user
    # name of 63 characters and request ids of 128 (both allowed), which an API client may make
    # of a session id and a counter, sharing everything but their last characters.
    state, base = endpoints
    notify = await _alice_pushing(deps, base)
    prefix = f"briefing/{'a' * 63}/2026-11-25/send/" + "session-0123456789abcdef" * 5
    # A webhook as its service hands it out: a long URL.
    hook = Target(type="webhook", target=f"{base}/hook?bot=" + "0123456789abcdef" * 4)
    for key in (f"{prefix}/1", f"{prefix}/2"):
        result = await ActivityEnvironment().run(notify.notify, _request(key, hook))
        assert [d.status for d in result.deliveries] == [DeliveryStatus.SENT], key
    assert [name for name, _ in state.received] == ["webhook", "webhook"]


def test_a_long_delivery_key_fits_its_column_on_every_channel() -> None:
    # deliveries.key is VARCHAR(255): PostgreSQL refuses a longer one ("dingtalk" is 8 letters).
    for channel in CHANNEL_TYPES:
        key = delivery_key("r" * 300, channel, "https://example.com/" + "t" * 300)
        assert len(key) <= MAX_KEY, channel
        assert key.startswith("r" * 100) and f":{channel}:sha256:" in key
    # A request key of long names (a threshold watch's, its check's run marked, up to its
    # hundred-millionth check) stays whole before the target's hash: a notification's rows
    # are found by it (`under`, `defer`).
    life = "threshold-watch/" + "u" * 63 + "/" + "t" * 63 + "/" + "l" * 36
    for check, what in [("12", "breach"), ("12345678", "recovery"), ("99999999", "unwatched")]:
        request = f"{life}/{check}@abcdef/{what}"
        for channel in CHANNEL_TYPES:
            key = delivery_key(request, channel, "https://example.com/" + "t" * 300)
            assert len(key) <= MAX_KEY and key.startswith(f"{request}:{channel}:sha256:"), key


async def test_quiet_hours_record_the_held_back_push_as_suppressed(deps: WorkerDeps) -> None:
    from ambient import history

    await _user(deps.db, "erin", timezone="America/New_York")
    await _set_push(
        deps.db,
        "erin",
        {
            "channels": [{"type": "webhook", "target": "https://hooks.example/x?token=t0p"}],
            "quiet_hours": _quiet_now("America/New_York"),
        },
    )
    notify = NotifyActivities(deps.db, deps.channels)
    request = _request("q2").model_copy(update={"user": "erin"})
    env = ActivityEnvironment()
    first = await env.run(notify.notify, request)
    again = await env.run(notify.notify, request)  # a retry: still held back, one row
    for result in (first, again):
        assert [(d.channel, d.status) for d in result.deliveries] == [("webhook", "suppressed")]
    # "Why no push last night?": the deliveries list answers, without the token.
    async with deps.db.session() as session:
        rows = await history.deliveries(session, "erin", status="suppressed", operator=True)
        events = await EventRepository(session).list(user="erin")
    assert [(r.channel, r.target, r.error) for r in rows] == [
        ("webhook", redact_target("webhook", "https://hooks.example/x?token=t0p"), "quiet hours")
    ]
    assert [e for e in events if e.kind == "delivery.failed"] == []


async def test_apprise_tokens_stay_out_of_the_deliveries_list(deps: WorkerDeps) -> None:
    from ambient import history

    await _user(deps.db, "fay", timezone="Europe/Berlin")
    # Apprise URLs carry their credentials in the host and path, not only in a query.
    urls = [
        "tgram://123456789:AAHbotTOKEN/987654",
        "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV",
        "gotify://push.example/AppTOKEN1234",
    ]
    await _set_push(
        deps.db,
        "fay",
        {
            "channels": [{"type": "apprise", "target": url} for url in urls],
            "quiet_hours": _quiet_now("Europe/Berlin"),
        },
    )
    notify = NotifyActivities(deps.db, deps.channels)
    request = _request("a1").model_copy(update={"user": "fay"})
    result = await ActivityEnvironment().run(notify.notify, request)
    async with deps.db.session() as session:
        rows = await history.deliveries(session, "fay", operator=True)
    shown = sorted(r.target for r in rows)
    assert shown == sorted(d.target for d in result.deliveries)
    assert shown == sorted(redact_target("apprise", url) for url in urls)
    assert [s.partition("#")[0] for s in shown] == [
        "discord://…",
        "gotify://push.example/…",
        "tgram://…",
    ]


async def test_one_phone_number_written_two_ways_gets_one_sms(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice", phone="+86 138-0000-0000")
    await _set_push(deps.db, "alice", {"channels": [{"type": "sms", "target": ""}]})
    gateway = base.replace("http://", "json://") + "/apprise?:phone={phone}"
    deps.settings = _settings(deps.settings, base).model_copy(
        update={"sms_apprise_url": SecretStr(gateway)}
    )
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    # The task names the number as written elsewhere; the push config's SMS is the profile's.
    sent = await ActivityEnvironment().run(
        notify.notify, _request("sms-1", Target(type="sms", target="+86 (138) 0000 0000"))
    )
    assert [(d.channel, d.status) for d in sent.deliveries] == [("sms", "sent")]
    assert [body["phone"] for _, body in state.received] == ["8613800000000"]


async def test_one_mailbox_written_with_other_capitals_gets_one_mail(
    deps: WorkerDeps, mailbox: Mailbox
) -> None:
    """The profile keeps the address as typed at sign-up, a watch names it in lower case: one
    mailbox (a domain is case-blind, and mail providers fold the local part), one mail."""
    await _user(deps.db, "alice", email="Alice@Example.com")
    await _set_push(deps.db, "alice", {"channels": [{"type": "email", "target": ""}]})
    notify = _mailing(deps, mailbox)
    sent = await ActivityEnvironment().run(
        notify.notify, _request("mail-case-1", Target(type="email", target="alice@example.com"))
    )
    assert [(d.channel, d.status) for d in sent.deliveries] == [("email", "sent")]
    assert [mail["To"] for mail in mailbox.messages] == ["alice@example.com"]


async def test_one_mailbox_whose_domain_is_written_in_chinese_and_in_ascii_gets_one_mail(
    deps: WorkerDeps, mailbox: Mailbox
) -> None:
    """例子.中国 is sent to as xn--fsqu00a.xn--fiqs8s: a target naming either is one mailbox."""
    await _user(deps.db, "alice", email="alice@例子.中国")
    await _set_push(deps.db, "alice", {"channels": [{"type": "email", "target": ""}]})
    notify = _mailing(deps, mailbox)
    idn = Target(type="email", target="alice@xn--fsqu00a.xn--fiqs8s")
    sent = await ActivityEnvironment().run(notify.notify, _request("mail-idn-1", idn))
    assert [(d.channel, d.status) for d in sent.deliveries] == [("email", "sent")]
    assert [envelope[1] for envelope in mailbox.envelopes] == [["alice@xn--fsqu00a.xn--fiqs8s"]]


def test_a_webhook_url_in_other_capitals_or_with_its_default_port_is_one_destination() -> None:
    hook = Target(type="webhook", target="https://hooks.example.com/x")
    for same in ("https://Hooks.Example.com/x", "HTTPS://hooks.example.com:443/x"):
        assert hook.same_destination(Target(type="webhook", target=same))
    for other in ("https://hooks.example.com:8443/x", "https://hooks.example.com/X"):
        assert not hook.same_destination(Target(type="webhook", target=other))


async def test_a_wecom_message_in_several_posts_retried_after_a_failure_sends_each_post_once(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    import pytest
    from temporalio.exceptions import ApplicationError

    state, base = endpoints
    notify = await _alice_pushing(deps, base)
    # Over WeCom's 4,096 bytes: markdown posts, then a text post with the mention.
    body = "\n".join(f"line {i}: " + "磁盘" * 60 for i in range(60))
    request = NotifyRequest(
        user="alice",
        message=Message(title="Disk report", body=body, kind=NotificationKind.WATCH),
        targets=[Target(type="wecom", target="secret:ops-bot?mentioned=zhangsan")],
        idempotency_key=unique("parts"),
    )
    state.failures["wecom"] = ["ok", "500"]  # the second post fails once
    with pytest.raises(ApplicationError, match="transient"):
        await ActivityEnvironment().run(notify.notify, request)
    assert len(state.received) == 1
    retried = await ActivityEnvironment().run(notify.notify, request)
    assert [(d.channel, d.status) for d in retried.deliveries] == [("wecom", "sent")]
    posts = [
        body["markdown"]["content"] if "markdown" in body else body["text"]["content"]
        for _, body in state.received
    ]
    # Each post once, in order: the retry went on from the post that failed.
    parts = [p.rsplit("(", 1)[-1] for p in posts[:-1]]
    assert len(parts) > 1 and parts == [f"{i}/{len(parts)})" for i in range(1, len(parts) + 1)]
    assert posts[-1] == "Disk report"
    again = await ActivityEnvironment().run(notify.notify, request)
    assert [d.status for d in again.deliveries] == [DeliveryStatus.DUPLICATE]
    assert len(state.received) == len(posts)


async def test_a_delivery_whose_last_try_ends_in_flight_is_said_to_have_failed_once(
    ts_env: WorkflowEnvironment, deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _alice_pushing(deps, base)
    task = unique("reminder/alice/standup")
    # An earlier try's worker died in the send: no try of the notify activity finishes this
    # delivery, and none records its failure.
    key = f"{task}/run:webhook:secret:hook"
    await left_in_flight(deps.db, key, "alice", "webhook", "secret:hook")
    config = ReminderConfig.model_validate(
        {
            "message": "站会",
            "cron": "30 9 * * 1-5",
            "targets": [{"type": "webhook", "target": "secret:hook"}],
        }
    )
    await _reminded(ts_env, deps, task, config)
    await save_history(ts_env.client.get_workflow_handle(f"{task}/run"), "reminder_gave_up")
    assert state.received == []
    async with deps.db.session() as session:
        events = await EventRepository(session).list(user="alice", kind="delivery.failed")
    (failed,) = events  # the retries are over: said once, and not as retrying
    assert failed.payload["channel"] == "webhook" and failed.payload["retrying"] is False
    assert failed.task == task


async def test_a_delivery_in_flight_whose_channel_was_removed_is_not_left_in_flight_for_good(
    deps: WorkerDeps,
) -> None:
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    request = _request(unique("removed-in-flight"), Target(type="inbox"))
    # An earlier try's worker died sending to a webhook Alice then removed from her push
    # config. This try skipped it (still in its lease), sent the inbox and was done: nothing
    # ever gave the webhook's row up, "pending" for good.
    key = delivery_key(request.idempotency_key, "webhook", "secret:hook")
    await left_in_flight(deps.db, key, "alice", "webhook", "secret:hook")
    with pytest.raises(ApplicationError, match="in flight"):  # retried after its lease
        await ActivityEnvironment().run(notify.notify, request)
    await _lease_over(deps.db, key)
    await ActivityEnvironment().run(notify.notify_given_up, request)  # the retries are over
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
    assert row is not None and (row.status, row.error) == ("failed", GIVEN_UP)


async def test_a_delivery_given_up_in_flight_is_listed_as_failed_and_a_later_send_may_take_it(
    deps: WorkerDeps,
) -> None:
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    request = _request(unique("given-up"), Target(type="inbox", target=""))
    key = delivery_key(request.idempotency_key, "inbox", "")
    # The last try's worker died in the send: the workflow gives the delivery up.
    await left_in_flight(deps.db, key, "alice")
    await _lease_over(deps.db, key)
    await ActivityEnvironment().run(notify.notify_given_up, request)
    async with deps.db.session() as session:
        [row] = await DeliveryRepository(session).list(user="alice")
        [failed] = await EventRepository(session).list(user="alice", kind="delivery.failed")
    # Not "pending" (in flight) for ever: failed, saying why, as its event says.
    assert (row.key, row.status, row.error) == (key, "failed", GIVEN_UP)
    assert failed.payload["retrying"] is False
    # The failure is transient: the same notification sent again later still goes out.
    again = await ActivityEnvironment().run(notify.notify, request)
    assert [d.status for d in again.deliveries] == [DeliveryStatus.SENT]


async def test_a_give_up_that_read_its_row_before_another_try_sent_it_says_nothing(
    deps: WorkerDeps,
) -> None:
    """The give-up reads the rows, then writes each in flight failed: a try of another worker
    that sent one in between (PostgreSQL lets it commit there) kept its row sent, but the
    user still heard "gave up" for a message that went out."""
    await _user(deps.db, "alice")
    request = _request(unique("raced"), Target(type="inbox", target=""))
    key = delivery_key(request.idempotency_key, "inbox", "")
    await left_in_flight(deps.db, key, "alice")
    async with deps.db.session() as session:
        stale = await DeliveryRepository(session).get(key)
    assert stale is not None and stale.status == "pending"
    async with deps.db.writing() as session:  # the other worker's try sends it
        await DeliveryRepository(session).finish(key, 1, status="sent", provider_id="7")
    async with deps.db.writing() as session:
        await give_up(session, request, key, "inbox", "", stale)
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
        said = await EventRepository(session).list(user="alice", kind="delivery.failed")
    assert row is not None and (row.status, row.provider_id) == ("sent", "7")
    assert said == []


async def test_a_delivery_whose_last_try_died_handing_it_over_is_given_up_never_sent_again(
    deps: WorkerDeps,
) -> None:
    await _user(deps.db, "alice")
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    request = _request(unique("handing"), Target(type="email", target="alice@example.com"))
    key = delivery_key(request.idempotency_key, "email", "alice@example.com")
    # The last try's worker died after the mail server was handed the message (its row says
    # so), before its answer: the receiver may have it.
    await left_in_flight(deps.db, key, "alice", "email", "alice@example.com")
    async with deps.db.writing() as session:
        await DeliveryRepository(session).posted(key, 1, HANDING)
    await _lease_over(deps.db, key)
    await ActivityEnvironment().run(notify.notify_given_up, request)
    async with deps.db.session() as session:
        row = await DeliveryRepository(session).get(key)
        [failed] = await EventRepository(session).list(user="alice", kind="delivery.failed")
    assert row is not None and (row.status, row.error) == ("failed", HANDED_UNANSWERED)
    assert failed.payload["retrying"] is False and "may have been delivered" in str(failed.payload)
    # Failed for good: the same notification sent again does not send it a second time.
    again = await ActivityEnvironment().run(notify.notify, request)
    assert [(d.status, d.error) for d in again.deliveries] == [
        (DeliveryStatus.FAILED, HANDED_UNANSWERED)
    ]


async def test_an_inbox_message_stored_by_a_try_that_died_before_saying_sent_is_not_stored_twice(
    deps: WorkerDeps,
) -> None:
    await _user(deps.db, "alice")
    channels = build_channels(deps.settings, deps.db, deps.http)
    notify = NotifyActivities(deps.db, channels)
    request = _request(unique("inbox-once"), Target(type="inbox", target=""))
    key = delivery_key(request.idempotency_key, "inbox", "")
    # A try took the row's lease and stored the message; its worker died before the row said
    # sent, and its lease has run out since.
    now = datetime.now(UTC)
    async with deps.db.write_session() as session:
        _, mine = await DeliveryRepository(session).acquire(
            key, user="alice", channel="inbox", target="", now=now, lease_until=now
        )
        await session.commit()
    assert mine
    posts = RowPosts(deps.db, key, 0, attempt=1)
    await channels.get("inbox").send("alice", request.message, "", idempotency_key=key, posts=posts)
    retried = await ActivityEnvironment().run(notify.notify, request)
    async with deps.db.session() as session:
        stored = await InboxRepository(session).list("alice")
    assert [m.title for m in stored] == ["Disk 91%"]
    assert [d.status for d in retried.deliveries] == [DeliveryStatus.DUPLICATE]


async def test_a_phone_number_without_its_country_code_is_never_texted(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    # The gateway gets the digits and Apprise puts "+" before them (Twilio: +13800000000):
    # a Chinese mobile written without +86 would be texted to a stranger's number abroad.
    # Refused where it is saved, and at send when it comes from the profile.
    import pytest
    from pydantic import ValidationError

    state, base = endpoints
    with pytest.raises(ValidationError, match=r"international form"):
        PushConfig.model_validate({"channels": [{"type": "sms", "target": "13800000000"}]})
    await _user(deps.db, "alice")
    async with deps.db.session() as session:  # saved before the profile refused such a number
        await session.execute(update(User).where(User.name == "alice").values(phone="13800000000"))
        await session.commit()
    await _set_push(deps.db, "alice", {"channels": [{"type": "sms", "target": ""}]})
    gateway = base.replace("http://", "json://") + "/apprise?:phone={phone}"
    deps.settings = _settings(deps.settings, base).model_copy(
        update={"sms_apprise_url": SecretStr(gateway)}
    )
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    sent = await ActivityEnvironment().run(notify.notify, _request("sms-local"))
    (sms,) = [d for d in sent.deliveries if d.channel == "sms"]
    assert sms.status == "failed" and "international form" in (sms.error or "")
    assert state.received == []


async def test_a_delivery_whose_channel_is_removed_between_its_tries_is_said_to_have_failed(
    deps: WorkerDeps, endpoints: tuple[PushEndpoints, str]
) -> None:
    state, base = endpoints
    await _user(deps.db, "alice")
    hook = {"type": "webhook", "target": "secret:hook", "kinds": ["watch"]}
    await _set_push(deps.db, "alice", {"channels": [hook]})
    deps.settings = _settings(deps.settings, base)
    notify = NotifyActivities(deps.db, build_channels(deps.settings, deps.db, deps.http))
    state.failures["webhook"] = ["500"]
    request = _request(unique("removed"), Target(type="inbox"))
    with pytest.raises(ApplicationError, match="HTTP 500"):
        await ActivityEnvironment().run(notify.notify, request)
    # Alice removes the webhook before the retry: it is not sent, and no longer retried.
    await _set_push(deps.db, "alice", {"channels": []})
    result = await ActivityEnvironment().run(notify.notify, request)
    assert [d.channel for d in result.deliveries] == ["inbox"] and state.received == []
    async with deps.db.session() as session:
        events = await EventRepository(session).list(user="alice", kind="delivery.failed")
    # Said as retrying, then as over: not "retrying" for ever.
    assert [e.payload["retrying"] for e in events] == [False, True]
