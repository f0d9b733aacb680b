"""Mail headers in Chinese reach a plain SMTP server (no SMTPUTF8) as RFC 2047 encoded words
within RFC 5322's 78-character lines, and read back as written."""

from ambient.clients.notify.email import EmailChannel
from ambient.domain.notify import Message, Target
from ambient.domain.push import target_problem
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
