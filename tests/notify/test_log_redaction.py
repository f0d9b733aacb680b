"""Logs never carry webhook tokens, robot keys or query strings."""

import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ambient.log_redaction import install_redaction, redact
from tests.support.servers import http_client, serve


def test_redact_removes_user_info_queries_and_secret_parameters() -> None:
    assert redact("POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc123 ok") == (
        "POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?[redacted] ok"
    )
    assert (
        redact("json://user:pw@hooks.example:8080/x#frag")
        == "json://hooks.example:8080/x?[redacted]"
    )
    assert redact("/share/page?token=t0k3n") == "/share/page?[redacted]"
    assert redact("retry with access_token=s3cr3t&timestamp=1") == (
        "retry with access_token=[redacted]&timestamp=1"
    )
    assert redact("secret:ops-bot and alice@example.com stay") == (
        "secret:ops-bot and alice@example.com stay"
    )


def test_redact_removes_the_tokens_webhook_urls_carry_in_their_path() -> None:
    # Slack, Discord, Feishu and Telegram put the credential in the path, not the query.
    slack = "https://hooks.slack.com/services/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"
    assert redact(f"POST {slack} 200") == (
        "POST https://hooks.slack.com/services/T0AB12CDE/B0FG34HIJ/[redacted] 200"
    )
    discord = "https://discord.com/api/webhooks/123456789012345678/Ab3dEf_gh-IJkLmNoPqRsTuVwXyZ0"
    assert redact(discord) == "https://discord.com/api/webhooks/123456789012345678/[redacted]"
    feishu = "https://open.feishu.cn/open-apis/bot/v2/hook/0f8e2a6c-3b1d-4e5f-9a7b-c2d4e6f8a0b1"
    assert redact(feishu) == "https://open.feishu.cn/open-apis/bot/v2/hook/[redacted]"
    telegram = "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send"
    assert redact(telegram) == "https://api.telegram.org/[redacted]/send"
    page = "https://example.com/news/2026/11/kubernetes-upgrade-notes-for-operators"
    assert redact(page) == page  # a page's words are no credential


async def test_httpx_request_logs_are_redacted_once_installed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def ok(request: Request) -> Response:
        return Response("ok")

    install_redaction()
    install_redaction()  # a second entry point in the same process changes nothing
    async with serve(Starlette(routes=[Route("/hook", ok, methods=["POST"])])) as base:
        with caplog.at_level(logging.INFO, logger="httpx"):
            async with http_client() as http:
                await http.post(f"{base}/hook?access_token=s3cr3t-token&sign=abc")
    messages = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert messages and all("s3cr3t-token" not in m and "sign=abc" not in m for m in messages)
    assert f"{base}/hook?[redacted]" in messages[0]
    # An access log in uvicorn's shape: the path argument is redacted, the other args kept.
    with caplog.at_level(logging.INFO, logger="tests.access"):
        logging.getLogger("tests.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/x?token=abc", "1.1", 200
        )
    access = [r for r in caplog.records if r.name == "tests.access"]
    assert access[-1].args == ("127.0.0.1:5", "GET", "/x?[redacted]", "1.1", 200)


def _fingerprinted(shown: str, target: str) -> str:
    """``shown`` as a target is shown that hid a token: with its fingerprint."""
    from ambient.domain.notify import target_fingerprint

    return shown if shown == target else f"{shown}#{target_fingerprint(target)}"


@pytest.mark.parametrize(
    ("channel", "target", "shown"),
    [
        ("webhook", "https://hooks.example?token=s3cret", "https://hooks.example?…"),
        ("webhook", "https://u:p@hooks.example#s3cret", "https://hooks.example?…"),
        ("apprise", "json://hooks.example?token=s3cret", "json://hooks.example/…"),
        ("apprise", "https://hooks.example?token=s3cret", "https://hooks.example?…"),
        ("webhook", "https://hooks.example/x?token=s3cret", "https://hooks.example/…"),
    ],
)
def test_a_target_url_without_a_path_is_shown_without_its_query(
    channel: str, target: str, shown: str
) -> None:
    from ambient.domain.notify import redact_target

    # Rows, events and results show this: the query after the host held the token.
    assert redact_target(channel, target) == _fingerprinted(shown, target)


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("notica://T0KEN", "notica://…"),
        ("noticas://T0KEN", "noticas://…"),
        ("ntfy://t0pic?mode=cloud", "ntfy://…"),
        ("matrix://" + "t0" * 32, "matrix://…"),
        ("notica://notica.example/T0KEN", "notica://notica.example/…"),
        ("ntfys://ntfy.example/t0pic", "ntfys://ntfy.example/…"),
    ],
)
def test_a_hosted_apprise_target_is_shown_without_its_token(target: str, shown: str) -> None:
    from ambient.domain.notify import redact_target

    # In their hosted forms these services' first part is the token, not a host.
    assert redact_target("apprise", target) == _fingerprinted(shown, target)


@pytest.mark.parametrize(
    ("channel", "target", "shown"),
    [
        (
            "apprise",
            "https://discord.com/api/webhooks/123456789012345678/Zq9SECRETdiscordTOKEN0123",
            "https://discord.com/…",
        ),
        (
            "apprise",
            "https://hooks.slack.com/services/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",
            "https://hooks.slack.com/…",
        ),
        (
            "apprise",
            "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/",
            "https://api.telegram.org/…",
        ),
        (
            "apprise",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0f8e2a6c-3b1d-4e5f-9a7b",
            "https://qyapi.weixin.qq.com/…",
        ),
        (
            "apprise",
            "https://open.feishu.cn/open-apis/bot/v2/hook/0f8e2a6c-3b1d-4e5f-9a7b-c2d4e6f8a0b1",
            "https://open.feishu.cn/…",
        ),
        (
            "apprise",
            "https://open.larksuite.com/open-apis/bot/v2/hook/0f8e2a6c-3b1d-4e5f-9a7b-c2d4e6f8",
            "https://open.larksuite.com/…",
        ),
        (
            "apprise",
            "https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789abcdef",
            "https://oapi.dingtalk.com/…",
        ),
        ("apprise", "https://ntfy.sh/my-private-topic", "https://ntfy.sh/…"),
        (
            "webhook",
            "https://hooks.slack.com/services/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",
            "https://hooks.slack.com/…",
        ),
        ("webhook", "https://hooks.example/", "https://hooks.example/"),
    ],
)
def test_a_target_url_is_shown_by_its_host_its_path_may_be_a_token(
    channel: str, target: str, shown: str
) -> None:
    from ambient.domain.notify import redact_target

    # Apprise reads these services' own https URLs too: their token is in the path or query.
    assert redact_target(channel, target) == _fingerprinted(shown, target)


@pytest.mark.parametrize(
    ("channel", "first", "second"),
    [
        (
            "webhook",
            "https://hooks.slack.com/services/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",
            "https://hooks.slack.com/services/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",
        ),
        ("apprise", "https://ntfy.sh/ops-alerts-7f3a", "https://ntfy.sh/dev-alerts-9c1d"),
        ("apprise", "tgram://123456789:AAHbotTOKEN/987654", "tgram://123456789:AAHbotTOKEN/55"),
        ("apprise", "gotify://push.example/AppTOKEN1", "gotify://push.example/AppTOKEN2"),
        ("webhook", "https://hooks.example?token=one", "https://hooks.example?token=two"),
    ],
)
def test_two_targets_to_one_host_are_shown_apart_without_their_tokens(
    channel: str, first: str, second: str
) -> None:
    """Two Slack webhooks of one user were both shown as https://hooks.slack.com/…: alike in
    the deliveries, the briefing's answer and the user listings. Each now ends with a short
    fingerprint of its whole URL (the same every time), its token still hidden."""
    from ambient.domain.notify import redact_target

    one, two = redact_target(channel, first), redact_target(channel, second)
    assert one != two
    for url, shown in ((first, one), (second, two)):
        assert shown == redact_target(channel, url)  # stable
        assert redact_target(channel, shown) == shown  # a row's target, shown again as it is
        hidden = url.split("://", 1)[1].split("/", 1)[-1].split("?")[-1]
        assert hidden not in shown, shown
        assert len(shown.rpartition("#")[2]) == 4, shown
