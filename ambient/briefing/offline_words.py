"""What the offline briefing says of its sources, in Chinese and in English: their names,
a source that failed, what to do about a cloud read refused, the language model's failure,
the alarms skipped unread."""

from __future__ import annotations

# The sources' names in a Chinese briefing.
SOURCE_NAMES = {
    "logs": "日志",
    "alarms": "告警记录",
    "alarms.monitor": "云监控告警记录",
    "alarms.cls": "CLS 告警记录",
    "alarms.monitor (firing since before)": "今天以前开始、仍在告警的云监控告警",
    "alarms.cls (firing since before)": "今天以前开始、仍在告警的 CLS 告警",
    "alarms.monitor (the day's)": "当天的云监控告警记录",
    "alarms.cls (the day's)": "当天的 CLS 告警记录",
    "alarms.monitor (firing since midnight)": "今天零点以来开始、仍在告警的云监控告警",
    "alarms.cls (firing since midnight)": "今天零点以来开始、仍在告警的 CLS 告警",
    "llm": "大模型",
    "discussions": "讨论",
}
# In English the other sources are named by their key ("logs unavailable: ...").
SOURCE_NAMES_EN = {
    "alarms.monitor": "Cloud Monitor alarms",
    "alarms.cls": "CLS alert records",
    "alarms.monitor (firing since before)": "Cloud Monitor alarms firing since before the day",
    "alarms.monitor (the day's)": "Cloud Monitor alarms of the day",
    "alarms.cls (the day's)": "CLS alert records of the day",
    "alarms.cls (firing since before)": "CLS alert records firing since before the day",
    "alarms.monitor (firing since midnight)": "Cloud Monitor alarms begun since midnight",
    "alarms.cls (firing since midnight)": "CLS alert records begun since midnight",
}
# A source that failed, said in the briefing's language (failed logs are its headline, and
# so is an alarm history not read at all: "告警没能读取").
FAILED_SAID = {
    # One alarm source failed while the other answered (list_alarms' unread).
    "alarms.monitor": (
        "云监控告警记录没能读取，简报里只有 CLS 的告警。",
        "Cloud Monitor alarms could not be read: only CLS alert records are counted. ",
    ),
    "alarms.cls": (
        "CLS 告警记录没能读取，简报里只有云监控的告警。",
        "CLS alert records could not be read: only Cloud Monitor alarms are counted. ",
    ),
    # Only the day's read failed: the alarms still firing since before are listed.
    "alarms.monitor (the day's)": (
        "云监控当天的告警没能读取，此前开始、仍在告警的已列出。",
        "Cloud Monitor's alarms of the day could not be read: those still firing since before "
        "are listed. ",
    ),
    "alarms.cls (the day's)": (
        "CLS 当天的告警记录没能读取，此前开始、仍在告警的已列出。",
        "CLS alert records of the day could not be read: those still firing since before are "
        "listed. ",
    ),
    # Only the look-back failed: the day's own alarms are all listed.
    "alarms.monitor (firing since before)": (
        "今天以前开始、仍在告警的云监控告警没能读取，当天的告警都已列出。",
        "Cloud Monitor alarms firing since before the day could not be read: the day's own "
        "are all listed. ",
    ),
    "alarms.cls (firing since before)": (
        "今天以前开始、仍在告警的 CLS 告警没能读取，当天的告警都已列出。",
        "CLS alert records firing since before the day could not be read: the day's own are "
        "all listed. ",
    ),
    # Only the read of those begun since midnight failed: the day's are all listed.
    "alarms.monitor (firing since midnight)": (
        "今天零点以来开始的云监控告警没能读取，昨天的告警都已列出。",
        "Cloud Monitor alarms begun since midnight could not be read: yesterday's are all listed. ",
    ),
    "alarms.cls (firing since midnight)": (
        "今天零点以来开始的 CLS 告警没能读取，昨天的告警都已列出。",
        "CLS alert records begun since midnight could not be read: yesterday's are all listed. ",
    ),
}
# Why the model's briefing was not given, said by failure (BriefingInputs.llm_failed).
# A cloud read refused, said in the headline as what to do: keys or a permission to fix, a
# region to check, or a busy API to ask again (all were "could not be read" alike).
WHAT_TO_DO = {
    "auth": (
        "（腾讯云拒绝了密钥或权限，请管理员检查）",
        " (Tencent Cloud refused the keys or a permission: ask your administrator)",
    ),
    "account": (
        "（腾讯云账号受限，请管理员检查）",
        " (the Tencent Cloud account is restricted: ask your administrator)",
    ),
    # CLS refused the briefing's own filter (a field without an index, its syntax).
    "query": (
        "（CLS 拒绝了日志筛选条件：字段没有索引或语法有误，请修改简报的筛选条件）",
        " (the log filter was refused by CLS, a field without an index or its syntax: correct "
        "the briefing's filter)",
    ),
    "no_index": (
        "（日志主题没有索引，无法检索，请在 CLS 控制台为它开启索引）",
        " (the log topic has no index, so CLS cannot search it: turn on its index in the CLS "
        "console)",
    ),
    "isolated": (
        "（日志主题因欠费被隔离，请管理员结清欠费或续费）",
        " (the log topic is isolated for arrears: ask your administrator to settle or renew)",
    ),
    "invalid_parameter": (
        "（请检查日志源的地域和主题）",
        " (check the log source's region and topic)",
    ),
    "not_found": (
        "（日志主题不存在，请检查日志源）",
        " (the log topic does not exist: check the log source)",
    ),
    # Too many requests at once, or a search the API failed or did not finish (answered): a
    # wait, then the page's "Prepare again" (a voice cannot); not reached (DNS, a proxy, the
    # endpoint): a way to check if it lasts.
    "busy": (
        "（腾讯云这会儿太忙，过几分钟可以在简报页面重新生成）",
        " (Tencent Cloud was busy: prepare it again on the briefing page in a few minutes)",
    ),
    # CLS's search memory, taken by this search or by many at once: a wait, then the filter.
    "search_memory": (
        "（CLS 检索内存不足，过几分钟可以在简报页面重新生成；"
        "如果一直这样，请缩小简报的日志筛选范围）",
        " (CLS ran out of search memory: prepare it again on the briefing page in a few "
        "minutes; if it lasts, narrow the briefing's log filter)",
    ),
    "unavailable": (
        "（腾讯云这次没能完成查询，过几分钟可以在简报页面重新生成）",
        " (Tencent Cloud could not complete the search: prepare it again on the briefing page "
        "in a few minutes)",
    ),
    "unreachable": (
        "（没能连上腾讯云，如果一直这样，请管理员检查到它的网络）",
        " (Tencent Cloud could not be reached: if it lasts, ask your administrator to check "
        "the way to it)",
    ),
}
LLM_FAILED_SAID = {
    "unanswered": (
        "大模型没有回应，这份简报按规则写成。",
        "The language model did not answer: this briefing was written by rules. ",
    ),
    "unfaithful": (
        "大模型写的简报与数据不符，这份简报按规则写成。",
        "The language model's briefing did not match the data: this one was written by rules. ",
    ),
    "invalid": (
        "大模型没有给出可用的简报，这份简报按规则写成。",
        "The language model gave no usable briefing: this one was written by rules. ",
    ),
    "refused": (
        "大模型服务拒绝了请求，这份简报按规则写成。",
        "The language model refused the request: this briefing was written by rules. ",
    ),
    "key": (
        "大模型服务拒绝了它的密钥，这份简报按规则写成。",
        "The language model refused its key: this briefing was written by rules. ",
    ),
}
# Alarms answered without a time the API gives, skipped, by source: (Chinese, English's one).
SKIPPED = {
    "monitor": ("云监控有 {n} 条告警", "Cloud Monitor alarm"),
    "cls": ("CLS 有 {n} 条告警记录", "CLS alert record"),
}
