"""Mail headers in Chinese reach a plain SMTP server (no SMTPUTF8) as RFC 2047 encoded words
within RFC 5322's 78-character lines, and read back as written."""

import httpx
import pytest
from pydantic import ValidationError

from ambient.clients.notify.email import EmailChannel
from ambient.clients.notify.registry import build_channels
from ambient.domain.notify import Message, Target
from ambient.domain.push import target_problem
from ambient.settings import Settings
from ambient.storage import Database
from tests.notify.standins import Mailbox

TITLE = (
    "【严重告警】订单服务在生产集群中的错误率持续升高，已超过阈值百分之五，"
    "请值班同学立即处理并确认影响范围"
)


async def test_a_chinese_sender_name_and_a_long_chinese_subject_are_encoded_and_folded() -> None:
    assert len(TITLE.encode()) > 78
    with Mailbox(smtputf8=False) as box:
        channel = EmailChannel("127.0.0.1", box.port, "运维机器人 <ops@example.com>", tls="none")
        await channel.send(
            "alice",
            Message(title=TITLE, body="订单服务 5xx"),
            "zhangsan@example.com",
            idempotency_key="k",
        )
    (raw,) = box.raw
    header = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # nothing but ASCII in the header
    assert max(len(line) for line in header.splitlines()) <= 78
    assert "Subject: =?utf-8?" in header and "From: =?utf-8?" in header
    (mail,) = box.messages
    assert mail["Subject"] == TITLE
    assert mail["From"].addresses[0].display_name == "运维机器人"
    assert mail["From"].addresses[0].addr_spec == "ops@example.com"
    assert box.envelopes == [("ops@example.com", ["zhangsan@example.com"])]


async def test_an_address_whose_domain_is_chinese_goes_in_its_ascii_form() -> None:
    """`zhangsan@例子.中国` is accepted as an email target, but a server without SMTPUTF8 (most
    relays) refused it for good: its domain has an ASCII (IDNA) form any server takes."""
    with Mailbox(smtputf8=False) as box:
        channel = EmailChannel("127.0.0.1", box.port, "ops@example.com", tls="none")
        await channel.send(
            "alice", Message(title="告警", body="x"), "zhangsan@例子.中国", idempotency_key="k"
        )
    assert box.envelopes == [("ops@example.com", ["zhangsan@xn--fsqu00a.xn--fiqs8s"])]
    assert box.messages[0]["To"].addresses[0].addr_spec == "zhangsan@xn--fsqu00a.xn--fiqs8s"


async def test_a_sender_whose_domain_is_chinese_goes_in_its_ascii_form() -> None:
    """A recipient's `例子.中国` went as `xn--fsqu00a.xn--fiqs8s` to a server without SMTPUTF8;
    AMBIENT_SMTP_FROM's domain did not, and every mail was refused."""
    with Mailbox(smtputf8=False) as box:
        channel = EmailChannel("127.0.0.1", box.port, "运维 <ops@例子.中国>", tls="none")
        await channel.send(
            "alice", Message(title="告警", body="x"), "zhangsan@example.com", idempotency_key="k"
        )
    assert box.envelopes == [("ops@xn--fsqu00a.xn--fiqs8s", ["zhangsan@example.com"])]
    (sender,) = box.messages[0]["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("运维", "ops@xn--fsqu00a.xn--fiqs8s")


@pytest.mark.parametrize(
    ("sender", "name"),
    [
        ("Ops, Beijing <ops@example.com>", "Ops, Beijing"),
        ("告警: 生产环境 <ops@example.com>", "告警: 生产环境"),
        ("Ambient Ops [prod] <ops@example.com>", "Ambient Ops [prod]"),
        ('"Ops, Beijing" <ops@example.com>', "Ops, Beijing"),
    ],
)
async def test_a_sender_name_with_a_comma_colon_or_bracket_goes_as_one_mailbox(
    sender: str, name: str
) -> None:
    """AMBIENT_SMTP_FROM with a display name holding RFC 5322 specials, as people write names,
    went into From as written: a comma made two addresses (the envelope sender "Ops"), a colon
    a group, brackets failed every send. From must be that one mailbox, the envelope sender
    its address."""
    with Mailbox(smtputf8=False) as box:
        channel = EmailChannel("127.0.0.1", box.port, sender, tls="none", timeout=5)
        await channel.send(
            "alice", Message(title="告警", body="x"), "zhangsan@example.com", idempotency_key="k"
        )
        (mail,) = box.messages
    addresses = [(a.display_name, a.addr_spec) for a in mail["From"].addresses]
    assert box.envelopes == [("ops@example.com", ["zhangsan@example.com"])], box.envelopes
    assert addresses == [(name, "ops@example.com")], str(mail["From"])


@pytest.mark.parametrize(
    "given", ["Ops, Beijing", "ops@", "Ops <ops@example.com", "a@b.example, c@d.example", ""]
)
def test_a_sender_setting_that_is_no_mailbox_is_refused_when_settings_load(given: str) -> None:
    """Refused at every send before, or sent as something else (a comma's second address)."""
    with pytest.raises(ValidationError, match="AMBIENT_SMTP_FROM"):
        Settings(_env_file=None, smtp_from=given)  # type: ignore[call-arg]


async def test_mail_leaves_as_the_default_sender_when_none_is_set(
    db: Database, http: httpx.AsyncClient
) -> None:
    """The sender `make run` uses (none set) still loads and sends as itself."""
    with Mailbox(smtputf8=False) as box:
        defaults = Settings(  # type: ignore[call-arg]
            _env_file=None, smtp_host="127.0.0.1", smtp_port=box.port, smtp_tls="none"
        )
        email = build_channels(defaults, db, http).get("email")
        await email.send(
            "alice", Message(title="告警", body="x"), "zhangsan@example.com", idempotency_key="k"
        )
    assert box.envelopes == [("ambient-ops@localhost", ["zhangsan@example.com"])]
    assert str(box.messages[0]["From"]) == "ambient-ops@localhost"


def test_an_address_given_with_its_chinese_name_is_refused_naming_the_address_alone() -> None:
    """Copied from a mail client, `张三 <zhangsan@example.com>` was refused asking to quote the
    name; quoted, it was refused as "not permitted here". The refusal names what to give."""
    for given in ("张三 <zhangsan@example.com>", '"张三" <zhangsan@example.com>'):
        problem = target_problem(Target(type="email", target=given))
        assert problem is not None
        assert str(problem) == (
            "an email target is the address alone, without a name: 'zhangsan@example.com'"
        )
    assert target_problem(Target(type="email", target="zhangsan@example.com")) is None
    assert "not an email address" in str(target_problem(Target(type="email", target="张三 <x>")))
