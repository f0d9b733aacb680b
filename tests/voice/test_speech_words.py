"""What the voice says of log templates and long lines (ambient.speech): words, whole."""

from __future__ import annotations

import re

import pytest

from ambient.speech import cleaned, spoken_clip


def test_a_keys_placeholder_keeps_its_key_without_its_equals_sign() -> None:
    """A placeholder right after "key=" was padded with a space, which read as a key whose id
    had been taken out: the key went ("something payment failed something"). Its "=" was
    kept, and a TTS read it out: "trace id 等于某个值"."""
    said = cleaned("order_id=<*> payment failed status=<*>", english=True)
    assert said == "order id something payment failed status something"
    assert cleaned("用户 <*> 登录失败 uid=<*>") == "用户某个值登录失败 uid 某个值"
    assert cleaned("upstream timeout trace_id=<*>") == "upstream timeout trace id something"
    # A value the log wrote stays as it was.
    assert cleaned("retry=3 mode=fast", english=True) == "retry=3 mode=fast"


def test_a_placeholder_in_a_chinese_template_is_said_in_chinese_in_an_english_one_in_english() -> (
    None
):
    """A Chinese template's key=<*> was said by its nearest letter, the key's: the briefing
    said "订单接口调用支付网关超时 order id=something", an English word the log never held."""
    said = cleaned("最多的错误是：订单接口调用支付网关超时 order_id=<*>，共 873 次。")
    assert said == "最多的错误是：订单接口调用支付网关超时 order id 某个值，共 873 次。"
    said = cleaned("最多的错误是：payment failed status=<*>，共 3 次。")
    assert said == "最多的错误是：payment failed status something，共 3 次。"
    # An English template run into Chinese words keeps its English (its value is no key's).
    said = cleaned("发现 2 个异常，例如connection refused to <*>。")
    assert said == "发现 2 个异常，例如connection refused to something。"


@pytest.mark.parametrize(
    ("line", "said"),
    [
        # A colon inside a clock time is no clause's end ("since 09" was said).
        (
            "Disk almost full on db-primary-01: 92 percent used since 09:30 on the primary node",
            "Disk almost full on db-primary-01",
        ),
        # Nor a comma inside a number ("raises $1,500,000" was said).
        (
            "Acme raises $1,500,000,000 in funding for its new data centres in three regions",
            "Acme raises $1,500,000,000 in funding for its new data…",
        ),
        # Nor a quote's inside ('nightly job "orders-db' was said).
        (
            'Backup failed: nightly job "orders-db: full" exited with status 3 after hours',
            'Backup failed: nightly job "orders-db: full" exited with…',
        ),
    ],
)
def test_a_long_line_is_cut_at_a_clause_or_word_that_says_no_wrong_thing(
    line: str, said: str
) -> None:
    assert spoken_clip(line, 60) == said


def test_only_a_java_package_is_left_out_not_part_of_a_name_or_an_address() -> None:
    said = cleaned("java.net.SocketTimeoutException at my-app.v2.Service", english=True)
    assert said == "SocketTimeoutException at my-app.v2.Service"
    assert "ops.team.Lead@example.com" in cleaned("mail ops.team.Lead@example.com", english=True)


def test_the_administrator_is_told_where_to_set_one_up_in_words_not_a_command() -> None:
    """The answer read to an administrator held a shell command ("ambient briefing create
    --user NAME"): no words a voice says, nor a name it could say as written (ops_admin)."""
    from types import SimpleNamespace
    from typing import Any, cast

    from ambient.briefing.greeting import Greeting
    from ambient.domain.users import Role
    from ambient.storage.models import User

    greeting = cast(Any, Greeting.__new__(Greeting))
    greeting.settings = SimpleNamespace(llm_mode="offline")
    for name in ("dev", "ops_admin"):
        said = greeting._not_set_up("voice", User(name=name, role=Role.ADMIN))
        assert "命令行" in said[0] and "command line" in said[1], said
        assert not any(re.search(r"ambient|--|/|_|`", text) for text in said), said
        assert said == greeting._not_set_up("voice", User(name="dev", role=Role.ADMIN))


def test_a_web_address_written_against_chinese_goes_alone() -> None:
    """Chinese has no space after an address: it went with the address, the closing quote and
    the rest of the answer too ("没找到叫“" was all a speaker heard)."""
    said = cleaned("检查 https://shop.example.com/api?id=3 失败，页面https://a.cn/x。其余正常。")
    assert said == "检查 失败，页面。其余正常。", said
    assert cleaned("打开 www.qq.com，然后重试") == "打开，然后重试"
    assert cleaned("See https://x.com/a?b=1&c=2. Then retry.", english=True) == "See. Then retry."
    assert cleaned("the page (https://a.b/c) failed", english=True) == "the page failed"
