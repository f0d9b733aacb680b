"""What the voice says of log templates and long lines (ambient.speech): words, whole."""

from __future__ import annotations

import pytest

from ambient.speech import cleaned, spoken_clip


def test_a_keys_placeholder_keeps_its_key() -> None:
    """A placeholder right after "key=" was padded with a space, which read as a key whose id
    had been taken out: the key went ("something payment failed something")."""
    said = cleaned("order_id=<*> payment failed status=<*>", english=True)
    assert said == "order id=something payment failed status=something"
    assert cleaned("用户 <*> 登录失败 uid=<*>").endswith("uid=something")


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


def test_the_administrator_is_told_the_command_with_a_name_the_voice_can_say() -> None:
    """The hint's --user named another user when the voice said the name otherwise ("ops_admin"
    as "ops admin", a hex run dropped): such a name is said as what it stands for."""
    from types import SimpleNamespace
    from typing import Any, cast

    from ambient.briefing.greeting import Greeting
    from ambient.domain.users import Role
    from ambient.storage.models import User

    greeting = cast(Any, Greeting.__new__(Greeting))
    greeting.settings = SimpleNamespace(llm_mode="offline")
    for name, zh in (("dev", "--user dev"), ("ops_admin", "--user 加上你的用户名")):
        admin = User(name=name, role=Role.ADMIN)
        said_zh, said_en = greeting._not_set_up("voice", admin)
        assert zh in said_zh, said_zh
        assert said_en.endswith(
            f"--user {name}." if name == "dev" else "--user and your user name."
        )
