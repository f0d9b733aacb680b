"""An Apprise target is one Apprise can read, or it is refused where it is saved."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel
from ambient.clients.notify.errors import PermanentNotifyError
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.targets import TargetPolicy
from ambient.deps import WorkerDeps
from ambient.domain.notify import Message, Target
from ambient.domain.push import target_problem
from tests.conftest import unique
from tests.notify.test_push_config import api  # noqa: F401  (the API as bob)

TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654"


async def test_an_apprise_url_apprise_cannot_read_is_refused_when_saved(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    # A Telegram URL without its bot token, a Slack or Discord one missing its tokens: saved,
    # each failed every send for good ("not a valid Apprise URL"), found only then.
    for target in ("tgram://", "tgram://987654/", "slack://nothing", "discord://x", "feishu://"):
        answer = await api.put(
            "/users/me/push", json={"channels": [{"type": "apprise", "target": target}]}
        )
        assert answer.status_code == 422, (target, answer.text)
        detail = answer.json()["detail"][0]
        assert detail["loc"] == ["body", "channels", 0, "target"], target
        scheme = target.partition("://")[0]
        assert f"Apprise cannot read this {scheme}:// URL" in detail["msg"], detail["msg"]
    assert (await api.get("/users/me/push")).json()["channels"] == []  # nothing stored
    saved = await api.put(
        "/users/me/push", json={"channels": [{"type": "apprise", "target": TELEGRAM}]}
    )
    assert saved.status_code == 200, saved.text
    assert (await api.get("/users/me/push")).json()["channels"][0]["target"] == TELEGRAM


def test_an_https_apprise_url_of_no_service_apprise_knows_is_refused_when_saved() -> None:
    # Feishu's, DingTalk's and Telegram's own webhook URLs (and any other https URL) are not
    # read by Apprise: saved, each failed every send for good ("not a valid Apprise URL").
    for url in (
        "https://open.feishu.cn/open-apis/bot/v2/hook/0f8e2a6c-3b1d-4e5f-9a7b-c2d4e6f8a0b1",
        "https://oapi.dingtalk.com/robot/send?access_token=" + "a" * 64,
        "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/",
        "https://hooks.example.com/notify",
    ):
        problem = str(target_problem(Target(type="apprise", target=url)))
        assert "Apprise does not read this URL" in problem and "feishu://" in problem, url
    # Those it reads as their services are kept: Slack's, Discord's, WeCom's, ntfy's.
    for url in (
        "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "https://discord.com/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0f8e2a6c-3b1d",
        "https://ntfy.sh/ops-alerts",
    ):
        assert target_problem(Target(type="apprise", target=url)) is None, url


def test_an_apprise_url_refused_is_not_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    # Apprise logs a user's typo at ERROR ("Unparseable Telegram URL"), which reads as the
    # server's own failure: the refusal says it, the log keeps it at DEBUG at most.
    # A plugin's own WARNING quotes what was typed, a token perhaps ("An invalid Slack (third)
    # Token (…) was specified"): not kept either.
    token = unique("Tok") + "&x"
    for typo in (f"tgram://{unique('bot')}/", f"slack://T1JJ3T3L2/A1BRTD4JD/{token}/#c"):
        with caplog.at_level(logging.DEBUG):
            assert target_problem(Target(type="apprise", target=typo)) is not None, typo
    assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []


def test_an_apprise_service_disabled_on_the_server_is_said_as_the_servers(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plugin Apprise disables on this machine (its requirements missing): its "is disabled on
    # this system" was dropped with the typos, and the user was told their URL was wrong.
    from apprise.apprise import N_MGR

    monkeypatch.setattr(N_MGR["tgram"], "enabled", False)
    target = Target(type="apprise", target=f"{TELEGRAM}{unique('x')}")
    with caplog.at_level(logging.DEBUG):
        problem = str(target_problem(target))
    assert "not available on this server" in problem and "cannot read" not in problem, problem
    # The form's rules are pure (DESIGN: ambient/domain): the operator is told where targets
    # are checked for use, at entry and at every send.
    assert [r for r in caplog.records if r.name.startswith("ambient.domain")] == []
    with caplog.at_level(logging.DEBUG):
        used = TargetPolicy.strict().problem(target, user="alice", is_admin=False)
    assert str(used) == problem
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tgram://" in line and "disabled" in line for line in warned), warned


async def test_an_apprise_service_disabled_for_a_url_held_in_a_secret_is_told_the_operator(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `secret:tg` holding a tgram:// URL: the check for use saw only `secret:tg`, and the
    # operator was never told the plugin is disabled (the user's every send failed).
    from apprise.apprise import N_MGR

    monkeypatch.setattr(N_MGR["tgram"], "enabled", False)
    secrets = SecretResolver({"tg": SecretStr(TELEGRAM)})
    channel = AppriseChannel(secrets, DestinationGuard())
    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentNotifyError) as failed:
        await channel.send("alice", Message(title="t", body="b"), "secret:tg")
    assert "not available on this server" in str(failed.value), failed.value
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tgram://" in line and "disabled" in line for line in warned), warned
    assert all(TELEGRAM[9:] not in r.getMessage() for r in caplog.records)


async def test_an_apprise_url_naming_a_unicode_host_is_refused_saying_its_ascii_name(
    api: httpx.AsyncClient,  # noqa: F811
) -> None:
    """Apprise reads no host in ntfys://例子.测试/topic: it was saved unchecked and each send
    went to the public ntfy.sh, topic "topic"; json://例子.测试/ was refused as a URL Apprise
    cannot read (a token missing). Both are refused when saved, naming the ASCII form, which
    is saved and checked as any host."""
    for target in ("ntfys://例子.测试/topic", "json://例子.测试/hook", "gotify://例子.测试/Tok1"):
        answer = await api.put(
            "/users/me/push", json={"channels": [{"type": "apprise", "target": target}]}
        )
        assert answer.status_code == 422, (target, answer.text)
        said = answer.json()["detail"][0]["msg"]
        assert "xn--fsqu00a.xn--0zwm56d" in said and "ASCII" in said, said
    assert (await api.get("/users/me/push")).json()["channels"] == []
    ascii_form = "ntfys://xn--fsqu00a.xn--0zwm56d/topic"
    saved = await api.put(
        "/users/me/push", json={"channels": [{"type": "apprise", "target": ascii_form}]}
    )
    assert saved.status_code == 200, saved.text
    # A look-alike of a refused name is refused as that name (the guard reads its host).
    loopback = Target(type="apprise", target="ntfys://ｌｏｃａｌｈｏｓｔ/topic")
    assert "localhost" in str(TargetPolicy.strict().problem(loopback, user="bob", is_admin=False))


async def test_an_apprise_url_stored_before_its_host_was_checked_fails_at_send_saying_why(
    deps: WorkerDeps,
) -> None:
    """A target saved before a rule (an older version's push config, a running task's input)
    is sent as stored: each send checks it again, the form and the destination guard, and
    the delivery records why it was not sent."""
    from temporalio.testing import ActivityEnvironment

    from activities.notify import NotifyActivities
    from ambient import history
    from ambient.domain.notify import NotifyRequest
    from ambient.domain.users import UserCreate
    from ambient.storage.users import UserRepository

    user = unique("ada")
    async with deps.db.session() as session:
        await UserRepository(session).create(UserCreate(name=user))
        await session.commit()
    stored = {
        "ntfys://例子.测试/topic": "write its ASCII name xn--fsqu00a.xn--0zwm56d instead",
        "ntfys://ｌｏｃａｌｈｏｓｔ/topic": "write its ASCII name localhost instead",
        "json://127.0.0.1:9/hook": "refused destination 127.0.0.1: 127.0.0.1 is a loopback",
    }
    await ActivityEnvironment().run(
        NotifyActivities(deps.db, deps.channels).notify,
        NotifyRequest(
            user=user,
            message=Message(title="disk", body="91%"),
            targets=[Target(type="apprise", target=target) for target in stored],
            idempotency_key=unique("old-apprise"),
        ),
    )
    async with deps.db.session() as session:
        rows = await history.deliveries(session, user, operator=True)
    assert [row.status for row in rows] == ["failed"] * len(stored), rows
    errors = sorted(str(row.error) for row in rows)
    for said in stored.values():
        assert any(said in error for error in errors), (said, errors)
