"""A reply to "要批准…吗？确认就再说一次批准。" as a model passes it in ``which``: read word by
word, deterministic (mcp_server.voice_replies)."""

from __future__ import annotations

import pytest

from mcp_server.voice_replies import Reply, reply_said

# Heard as "没找到“批准那个”。等你审批的有：…": a verb with a pointer, and plain assents.
ASSENTS = ["可以", "行", "嗯", "没问题", "好的", "是", "是的", "确认", "yes", "ok", "sure"]
YES = [
    *("批准那个", "批准它", "同意", "同意那个修复", "对，批准", "好的，批准", "批准。", "它"),
    *("那个修复", "approve it", "yes approve it", "approve that fix", "go ahead", "yes please"),
    *("I approve", "do it", "approve that one", *ASSENTS),
]
REFUSED = ["拒绝那个", "拒绝。", "对 拒绝吧", "refuse it", "不要，拒绝吧"]
NO = ["不要", "不", "别", "算了", "取消", "no don't do it", "no", "cancel", "别批准"]
WAIT = ["等一下", "等等", "wait", "hold on", "not now"]


@pytest.mark.parametrize("said", YES)
def test_a_verb_with_a_pointer_or_a_plain_assent_is_a_yes_to_approving(said: str) -> None:
    assert reply_said(said, approve=True) == Reply("yes", "")


@pytest.mark.parametrize("said", [*REFUSED, *ASSENTS])
def test_the_refusals_verb_or_an_assent_is_a_yes_to_refusing(said: str) -> None:
    assert reply_said(said, approve=False) == Reply("yes", "")


@pytest.mark.parametrize("said", NO)
def test_a_no_is_a_no_to_approving_never_a_yes_and_a_refusal_to_refuse_remediation(
    said: str,
) -> None:
    assert reply_said(said, approve=True) == Reply("wait", "")
    assert reply_said(said, approve=False) == Reply("no", "")


@pytest.mark.parametrize("said", [*WAIT, "不拒绝", "别拒绝", "don't refuse"])
def test_a_wait_or_a_refusal_negated_decides_nothing(said: str) -> None:
    assert reply_said(said, approve=True).said == reply_said(said, approve=False).said == "wait"


def test_an_approval_said_to_refuse_remediation_or_a_refusal_to_approve_decides_nothing() -> None:
    # The verb of the other decision is no yes to this one: a person's approval is never
    # inferred from words that do not say it.
    assert reply_said("拒绝", approve=True) == Reply("wait", "")
    assert reply_said("批准它", approve=False) == Reply("wait", "")


@pytest.mark.parametrize(
    ("said", "reply"),
    [
        # A name or place with a reply around it: the reply, and the words that name a fix.
        ("好的，批准 checkout", Reply("yes", "checkout")),
        ("批准checkout的修复吧", Reply("yes", "checkout")),
        ("批准第一个", Reply("yes", "第一个")),
        ("approve number one", Reply("yes", "number one")),
        ("approve the second one", Reply("yes", "second one")),
        ("不要批准checkout", Reply("wait", "checkout")),
        # No reply in it: the words as said, a name; a question asks back, naming nothing.
        ("checkout 的错误率", Reply(None, "checkout 的错误率")),
        ("第一个", Reply(None, "第一个")),
        ("what is it", Reply("question", "")),
        ("批准 checkout 吗", Reply("question", "checkout")),
        ("nova", Reply(None, "nova")),
        ("edit it", Reply(None, "edit it")),
    ],
)
def test_words_around_a_name_are_its_reply_and_a_name_is_no_reply(said: str, reply: Reply) -> None:
    assert reply_said(said, approve=True) == reply


@pytest.mark.parametrize(
    "said",
    [
        "你确定吗？",
        "确定吗",
        "对吗",
        "要批准吗",
        "批准吗？",
        "可以吗",
        "嗯？",
        "approve?",
        "approve what?",
    ],
)
def test_a_reply_that_asks_back_is_no_yes(said: str) -> None:
    assert reply_said(said, approve=True).said == "question"
    # Said to refuse_remediation, an approval's words decide nothing either.
    assert reply_said(said, approve=False).said in ("question", "wait")


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        # A no or a wait keeps its meaning whatever else it asks.
        ("不，什么都别做", "wait"),
        ("no, not really", "wait"),
        ("wait, what?", "wait"),
        ("等一下，什么", "wait"),
        # 呢 after a yes is the yes's particle; "really" said first is no question.
        ("嗯呢", "yes"),
        ("好呢", "yes"),
        ("对呢", "yes"),
        ("真的，批准", "yes"),
    ],
)
def test_a_no_a_wait_or_a_yes_with_a_question_word_in_it_keeps_its_meaning(
    said: str, meant: str
) -> None:
    assert reply_said(said, approve=True).said == meant
