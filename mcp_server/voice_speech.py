"""Speech in and out of the voice tools: the spoken references ("第一个", "the bitcoin watch")
resolved to one remediation or task, or a question back (numbers and spans of time said in words
are `voice_numbers`; the text a TTS engine reads well is `ambient.speech`). Deterministic, no LLM.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import NamedTuple

from ambient.domain.identifiers import TKE_CLUSTER_ID
from ambient.remediation.views import RemediationSummary
from ambient.speech import speakable
from ambient.watches.configs import TaskKind, TaskState
from ambient.watches.listing import TaskSummary
from mcp_server.voice_numbers import CJK, ENGLISH_NUMBERS, ORDINAL_WORDS, number
from mcp_server.voice_sentences import KIND_WORDS, METRIC_WORDS


def counted(count: int | str, one: str, many: str) -> str:
    """``count`` things in English: "1 fix", "2 fixes" (a count as a number or as written)."""
    return f"{count} {one if str(count) == '1' else many}"


def spoken_name(raw: str) -> str:
    return raw.replace("-", " ").replace("_", " ").replace(".", " ").strip()


# A metric name's words: snake_case, kebab-case and CamelCase ("CPUUsage": CPU, Usage) alike.
_METRIC_WORD_BREAK = re.compile(r"[\s_.-]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def metric_said(metric: str, english: bool = False) -> str:
    """A metric's name as the listener says it (Chinese unless ``english``): a common one in
    words ("error_rate": "错误率", "K8sWorkloadPodRestartTotal": "重启次数"), others as written."""
    words = [w.lower() for w in _METRIC_WORD_BREAK.split(metric) if w]
    # TKE's names first say where they measure ("K8sWorkload…"): the answer names the workload.
    while words[:1] in (["k8s"], ["workload"]):
        words = words[1:]
    said = METRIC_WORDS.get(" ".join(words))
    return said[english] if said else spoken_name(metric)


# The names of the TKE clusters the current answer's fixes run on, by cluster id, as their
# users call them (the console's names), when fixes differ by their cluster alone: set for the
# call by the tools that name fixes (`voice_approvals.name_clusters`).
cluster_names: ContextVar[Mapping[str, str]] = ContextVar(
    "voice_cluster_names", default=MappingProxyType({})
)


def _where(run: RemediationSummary) -> tuple[str, str, str]:
    """A fix's cluster, namespace and workload (its service is cluster/namespace/workload; a
    kubeconfig context, which may hold "/", is the cluster)."""
    parts = ["", "", *run.service.rsplit("/", 2)]
    return parts[-3], parts[-2], parts[-1]


def cluster_said(cluster: str) -> str:
    """A cluster as its user calls it: a kubeconfig context by its name, a TKE cluster by the
    name `cluster_names` holds for it ("" when none: its id is no name to say)."""
    if not TKE_CLUSTER_ID.fullmatch(cluster):
        return spoken_name(cluster)
    return _CLUSTER_WORD.sub("", spoken_name(cluster_names.get().get(cluster, "")))


_CLUSTER_WORD = re.compile(r"\s*(?:集群|cluster)$", re.IGNORECASE)  # said after it anyway


def clusters_alike(runs: Sequence[RemediationSummary]) -> set[str]:
    """The TKE clusters of fixes alike but for their cluster (one workload, namespace and
    alert type): the clusters whose names tell them apart."""
    where: dict[tuple[str, str, str], set[str]] = {}
    for run in runs:
        cluster, namespace, workload = _where(run)
        where.setdefault((workload, namespace, run.alert_type), set()).add(cluster)
    alike = set().union(*(clusters for clusters in where.values() if len(clusters) > 1))
    return {c for c in alike if TKE_CLUSTER_ID.fullmatch(c)}


def run_about(
    run: RemediationSummary, english: bool = False, among: Sequence[RemediationSummary] = ()
) -> str:
    """The fix as the voice names it: its workload and metric. Among ``among`` (the fixes an
    answer names, or may pick from), one said alike with another (a workload of one name in
    two namespaces, or clusters) is named by what differs: its metric as written ("cpu_usage"
    and "cpu_util" are both CPU 使用率); when the metric is the same, its namespace, and its
    cluster (`cluster_said`) where another's namespace is the same too."""
    return _naming(among, english)(run)


def _naming(
    among: Sequence[RemediationSummary], english: bool
) -> Callable[[RemediationSummary], str]:
    """`run_about` among ``among``: the fixes counted once by what may tell them apart, so that
    naming each of them does not compare it with every other (n² comparisons for n fixes)."""
    metrics: dict[str, str] = {}  # each alert type said once

    def said(alert_type: str) -> str:
        if alert_type not in metrics:
            metrics[alert_type] = metric_said(alert_type, english)
        return metrics[alert_type]

    # The alert types said alike on a workload; the fixes of an alert type on a workload, and
    # of those, the ones in a namespace and on a cluster (run keys: a fix is no twin of its own).
    types: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    keys: defaultdict[tuple[str, ...], set[str]] = defaultdict(set)
    for r in among:
        cluster, namespace, workload = _where(r)
        types[(workload, said(r.alert_type))].add(r.alert_type)
        for key in _twin_keys(r.alert_type, cluster, namespace, workload):
            keys[key].add(r.run_key)

    def about(run: RemediationSummary) -> str:
        cluster, namespace, workload = _where(run)
        metric = said(run.alert_type)
        if types.get((workload, metric), {run.alert_type}) - {run.alert_type}:
            metric = spoken_name(run.alert_type)
        # Another fix of its alert type on its workload, in its namespace, on its cluster.
        twins, same_namespace, same_cluster = (
            bool(keys.get(key, set()) - {run.run_key})
            for key in _twin_keys(run.alert_type, cluster, namespace, workload)
        )
        # What tells it from each twin: the cluster where the namespace is the same, the
        # namespace where the cluster is (either where both differ); a cluster without a name
        # to say (`cluster_said`) by the namespace, as before clusters were named.
        on = cluster_said(cluster) if same_namespace else ""
        where = spoken_name(namespace) if twins and (not on or same_cluster) else ""
        if english:
            return (
                f"{metric} on {spoken_name(workload)}"
                + (f" in {where}" if where else "")
                + (f" in the {on} cluster" if on else "")
            )
        if on:
            on = f"{on}{' ' if on[-1:].isascii() else ''}集群"
        said_where = " ".join(filter(None, (on, where)))
        # A space between Chinese and Latin words only, as written ("checkout 的错误率").
        named = spoken_name(workload) + (f"（{said_where}）" if said_where else " ")
        return f"{named}的{' ' if metric[:1].isascii() else ''}{metric}"

    return about


def _twin_keys(
    alert_type: str, cluster: str, namespace: str, workload: str
) -> tuple[tuple[str, ...], ...]:
    """The keys a fix's twins (fixes of its alert type on its workload) are counted by: all of
    them, those in its namespace, those on its cluster."""
    return (
        ("all", workload, alert_type),
        ("namespace", workload, alert_type, namespace),
        ("cluster", workload, alert_type, cluster),
    )


# Between the items of an English list said aloud: an item may hold a comma of its own ("number
# 1, error rate on checkout"), so commas between them ran items together (a task's label holds
# none: `task_label`). Chinese lists are joined by "、", which no item holds.
LIST_SEP_EN = "; "


def ordinal_word(i: int) -> str:
    """The Chinese ordinal of place i (from 0): a word up to the tenth, digits after it."""
    return ORDINAL_WORDS[i] if i < len(ORDINAL_WORDS) else str(i + 1)


ORDINALS_EN = "first second third fourth fifth sixth seventh eighth ninth tenth".split()
# "one" to "ten" are read as numbers (_place): only the ordinals and the last are words here.
_ORDINALS: dict[str, int] = {
    **{w: i for i, w in enumerate(ORDINALS_EN)},
    "last": -1,
    "最后": -1,
}


def _place(word: str) -> int | None:
    """The place (from 0) a word names: digits, 一…九十九 ("十一", "二十三"), English words."""
    if word in _ORDINALS:
        return _ORDINALS[word]
    count = number(word)  # read as a span's count is
    return int(count) - 1 if count else None


# The voice tools' verbs, which a model copies before what it names ("批准2", "pause the backup").
_VERBS = "批准|拒绝|暂停|恢复|approve|refuse|pause|resume"
# Which one, by place: "第二个", "二号", "the second", "2" (or "two", "二", "approve 2": a number
# alone answers "say which number"), and as the English answers name a fix ("number 2"):
# "number two", "no. 2", "#2", "2nd".
_ORDINAL = re.compile(
    r"第\s*([一二三四五六七八九十\d]+)|([一二三四五六七八九十\d]+)\s*号"
    rf"|\b({'|'.join(ORDINALS_EN)}|last)\b|最后"
    rf"|^(?:{_VERBS})?\s*"
    rf"(\d+|[一二三四五六七八九十]+|{'|'.join(ENGLISH_NUMBERS[:10])})[\s.。!！]*$"
    rf"|(?:\bnumber\s*|\bno\.\s*|#\s*)(\d+|{'|'.join(ENGLISH_NUMBERS[:10])})\b"
    r"|\b(\d+)(?:st|nd|rd|th)\b"
)


# What a model passes when the person named nothing: a pronoun, a bare kind of thing, or a
# placeholder copied from an argument's description ("任务名", "服务名"). Measured: a 1.5B model
# calls pause_task(name="它") for "把它停了" and approve_remediation(which="第一个") for
# "批准。" (docs/benchmarks.md). Such a reference picks nothing: the answer asks back.
_NAMES_NOTHING = frozenset(
    {
        *("它", "他", "她", "它们", "那", "这", "那个", "这个", "那一个", "这一个", "哪个"),
        *("任务", "任务名", "一个任务", "那个任务", "这个任务", "监控", "那个监控", "这个监控"),
        *("服务", "服务名", "修复", "那个修复", "这个修复", "回滚", "那个回滚", "第几个", "名字"),
        *("it", "that", "this", "thatone", "thisone", "them", "theone", "unknown"),
        *("task", "thetask", "atask", "taskname", "yourtaskname", "name", "watch", "thewatch"),
        *("monitor", "themonitor", "fix", "thefix", "thatfix", "service", "servicename"),
    }
)
_FILLER = re.compile(r"[\s_.\-'\"“”‘’，。？！、,?!]+|[吧呢啊了哦嘛]+$")


def _flat(value: str | None) -> str:
    """``value`` lowercased without spaces, '_', '.' or '-': how names are compared."""
    return re.sub(r"[\s_.-]+", "", (value or "").lower())


def names_nothing(said: str) -> bool:
    """True when a spoken reference names no particular thing ("它", "that one", "任务名")."""
    key = _FILLER.sub("", said.strip().lower())
    return not key or key in _NAMES_NOTHING


def _part_of(key: str, said: str | None) -> bool:
    """``key`` names ``said``: all of it, a word of it ("hn" of "hn_daily_pv"), or a part long
    enough to mean it ("it" ≠ "bitcoin"), not a number word ("two" ≠ "network": a place)."""
    text, words = _flat(said), re.split(r"[\W_]+", (said or "").lower())
    long_enough = len(key) >= (2 if CJK.search(key) else 3) and key not in ENGLISH_NUMBERS
    return bool(key) and (key == text or (long_enough and key in text) or key in words)


_FROM_END = re.compile(r"倒数|\b(?:to|from)\s+(?:the\s+)?last\b|\b(?:second|third)\s+last\b")


def _which_waits(runs: list[RemediationSummary], english: bool = False) -> str:
    # Some of many named: how many wait is said, or three sound like all of them.
    many = len(runs) > 3
    if english:
        listed = ", ".join(run_about(r, english, runs) for r in runs[:3])
        waits = f"{len(runs)} wait for you, like" if many else "Waiting for you"
        return f"{waits}: {listed}. Say the service or which number."
    listed = "、".join(run_about(r, among=runs) for r in runs[:3])
    waits = f"等你审批的有 {len(runs)} 个，比如" if many else "等你审批的有"
    return f"{waits}：{listed}。请说服务名或第几个。"


# Words that only say what a thing is, around its name: "the backup task", "hn 那个", "checkout
# 服务的回滚", and the tool's verb a model copied before it ("批准checkout", "pause the backup").
_WHAT_IT_IS = re.compile(
    rf"^(?:{_VERBS}|the|that|this|my|那个|这个|我的)+"
    r"|(?:的|那个|这个|one|task|watch|monitor|fix|service|rollback|任务|监控|提醒|修复|回滚|服务)+$|的"
)


def _runs_called(runs: list[RemediationSummary], key: str) -> list[RemediationSummary]:
    """The runs ``key`` names: by service, alert type, or as the voice names them (its metric
    in either language, or as written: "payments 的 error rate"); first those it names whole
    as a list of them does ("checkout 的 CPU", not also "checkout 的 CPU 使用率"; "checkout 的
    cpu util", not also "cpu_usage", which is CPU 使用率 too: `run_about`)."""

    naming = (_naming(runs, False), _naming(runs, True))  # once: each run named among them

    def names(r: RemediationSummary) -> tuple[str, ...]:
        cluster, namespace, workload = _where(r)
        said = (naming[0](r), naming[1](r))
        # Said back as heard: without the brackets around a namespace ("checkout staging 的错误
        # 率"), or the namespace or cluster first ("staging 的 checkout 的错误率", "广州集群的
        # checkout 的错误率").
        heard = (*(_UNSAID.sub("", s) for s in said), f"{namespace}的{run_about(r)}")
        if on := cluster_said(cluster):
            heard += (f"{on}集群的{run_about(r)}", f"{on}的{run_about(r)}")
        return (
            *(r.service, r.alert_type, *said, *heard),
            *(f"{workload}的{r.alert_type}", f"{r.alert_type} on {workload}"),
        )

    whole = [r for r in runs if any(_flat(said) == key for said in names(r))]
    return whole or [
        r
        for r in runs
        if any(_part_of(key, said) for said in (*names(r), run_about(r), run_about(r, True)))
    ]


_PLACE_ONLY = re.compile(r"一?个|倒数|the|one|task|任务|的")


def _index_said(ordinal: re.Match[str], text: str) -> int | None:
    """The place ``ordinal`` (found in ``text``) names: from 0, or from the end when negative."""
    index = _place(next((g for g in ordinal.groups() if g), None) or "最后")
    if index is not None and index >= 0 and _FROM_END.search(text):
        index = -index - 1  # "倒数第二个": the second from the end
    return index


def _only_so_many(many: str, many_en: str, english: bool) -> str:
    """The answer to a place past the end of a list: how ``many`` it holds, and to say which."""
    return f"Only {many_en}: say which number." if english else f"只有 {many}，请说第几个。"


def pick_remediation(
    runs: list[RemediationSummary], said: str, english: bool = False
) -> tuple[RemediationSummary | None, str]:
    """The run ``said`` refers to, or None and the question to ask back (deterministic);
    the question in English when ``english``."""
    if not runs:
        return (
            None,
            "No fixes are waiting for your approval." if english else "现在没有等你审批的修复。",
        )
    if names_nothing(said):
        if english:
            return None, f"Which one do you mean? {_which_waits(runs, english)}"
        return None, f"你说的是哪一个？{_which_waits(runs)}"
    text = said.strip().lower()
    words = _flat(text)
    # As said, else without the words that only say what it is ("checkout的修复", "the fix").
    matches = _runs_called(runs, words) or _runs_called(runs, _WHAT_IT_IS.sub("", words))
    # A place alone ("number 2", "批准第二个"); with more words, the one run they name
    # ("gateway number 2", "first responder") before the place ("number 4, the search one").
    ordinal = _ORDINAL.search(text)
    if ordinal and (
        len(matches) != 1
        or not _PLACE_ONLY.sub(
            "", _WHAT_IT_IS.sub("", _flat(text[: ordinal.start()] + text[ordinal.end() :]))
        )
    ):
        index = _index_said(ordinal, text)
        if index is not None and -len(runs) <= index < len(runs):
            return runs[index], ""
        return None, _only_so_many(
            f"{len(runs)} 个修复在等你审批",
            f"{counted(len(runs), 'fix', 'fixes')} waiting for your approval",
            english,
        )
    if len(matches) == 1:
        return matches[0], ""
    if not matches:
        if english:
            return None, f"I found no “{said}”. {_which_waits(runs, english)}"
        return None, f"没找到“{said}”。{_which_waits(runs)}"
    if english:
        listed = LIST_SEP_EN.join(
            f"number {runs.index(r) + 1}, {run_about(r, english, runs)}" for r in matches[:3]
        )
        return None, f"{len(matches)} fit: {listed}. Say which number."
    listed = "、".join(
        f"第{ordinal_word(runs.index(r))}个{run_about(r, among=runs)}" for r in matches[:3]
    )
    return None, f"有 {len(matches)} 个符合：{listed}。请说第几个。"


# A task created without a name is said by its summary, which the service writes for lists
# ("Web monitor of 1 URL(s) every 5 min for alice"): its shapes said in Chinese and English.
_SUMMARIES: list[tuple[re.Pattern[str], str, Callable[..., str]]] = [
    (
        re.compile(r"Web monitor of (\d+) URL\(s\) every ([\d.]+) min\b"),
        "网页监控（{0} 个网址，每 {1} 分钟）",
        lambda n, m: (
            f"web monitor of {counted(n, 'page', 'pages')} every {counted(m, 'minute', 'minutes')}"
        ),
    ),
    (re.compile(r"Threshold watch (\S+):"), "阈值监控 {0}", lambda m: f"threshold watch {m}"),
    (
        re.compile(r"News digest of (\d+) page\(s\), (\w+) at (\d\d:\d\d)"),
        "新闻摘要（{0} 个网页，{1} {2}）",
        lambda n, e, t: f"news digest of {counted(n, 'page', 'pages')} {e} at {t}",
    ),
    (
        re.compile(r"Reminder, (\w+) at (\d\d:\d\d)"),
        "提醒（{0} {1}）",
        lambda e, t: f"reminder {e} at {t}",
    ),
    (
        re.compile(r"News digest of (\d+) page\(s\), cron"),
        "新闻摘要（{0} 个网页，按计划）",
        lambda n: f"news digest of {counted(n, 'page', 'pages')} on a schedule",
    ),
    (re.compile(r"Reminder, cron"), "提醒（按计划）", lambda: "reminder on a schedule"),
    (re.compile(r"Daily briefing for"), "每日简报", lambda: "daily briefing"),
]
_EVERY = {"daily": "每天", "weekly": "每周"}
# What ends an item of a list said aloud, or a sentence, inside a label someone wrote: a comma
# or semicolon between words (not "1,000") and a sentence's end in English, "、" and the sentence
# ends in Chinese (whose shapes hold "，" inside their brackets, which ends no item of "、").
_LABEL_BREAKS = (
    re.compile(r"\s*(?:[、；;。！？]|[!?](?=\s|$))\s*"),
    re.compile(r"\s*(?:[,;](?!\d)|[.!?](?=\s|$)|[、，；。！？])\s*"),
)


def spoken_summary(summary: str | None, english: bool = False) -> str | None:
    """A task's summary as the voice says it: the service's own shapes in the listener's
    language (Chinese unless ``english``), any other summary as it is."""
    for pattern, said, said_en in _SUMMARIES:
        if summary and (found := pattern.match(summary)):
            # A word among them is a threshold watch's metric (said as `metric_said`), or
            # daily/weekly; counts and times ("2.5", "08:30") as written.
            if english:
                return said_en(
                    *(metric_said(g, english) if g.isidentifier() else g for g in found.groups())
                )
            words = [
                _EVERY.get(g, metric_said(g) if g.isidentifier() else g) for g in found.groups()
            ]
            return said.format(*words)
    return summary


# The name a task created without one gets (12 hex digits of a hash): digits among them, as a
# hash has; a name of the letters a-f alone ("deadbeefcafe") is one a person gave.
_DERIVED_NAME = re.compile(r"(?=[a-f]*\d)[0-9a-f]{12}")


def unnamed(name: str) -> bool:
    """Whether a task's ``name`` is the one derived for a task created without a name."""
    return _DERIVED_NAME.fullmatch(name) is not None


def task_label(task: TaskSummary, english: bool = False, among: Sequence[TaskSummary] = ()) -> str:
    """The task as the voice names it (`task_labels`), among ``among`` (the user's tasks)."""
    others = (t for t in among if t.task_id != task.task_id)
    return task_labels([task, *others], english)[task.task_id]


def task_labels(tasks: Sequence[TaskSummary], english: bool = False) -> dict[str, str]:
    """Each task's label by its id, as the voice names it among ``tasks``: by its name, or by
    its summary; one said by its summary as another is ("提醒（每天 8点30分）" for two reminders
    at 8:30) with its place among them by when each was created: "第二个提醒（每天 8点30分）",
    "the second reminder daily at 8:30" (a deleted one as it is said alone)."""
    labels, groups = _said_alike(tasks, english)
    for group in groups:
        for i, task in enumerate(group):
            labels[task.task_id] = _numbered(labels[task.task_id], i, english)
    return labels


def _said_order(listed: Sequence[TaskSummary], alike: list[list[TaskSummary]]) -> list[TaskSummary]:
    """``listed`` in the order a list says them: the tasks said alike (``alike``, each group in
    its numbered order, `_said_alike`) together, in that order, ahead of the others (each group,
    and the others, as ``listed`` has them), so that a place said alone ("第二个") is the task
    its label numbers so ("第二个提醒…"); listed newest first, "第二个" was the first reminder."""
    number = {t.task_id: (g, i) for g, group in enumerate(alike) for i, t in enumerate(group)}
    first: dict[int, int] = {}  # each group's first place in ``listed``
    for j, task in enumerate(listed):
        if task.task_id in number:
            first.setdefault(number[task.task_id][0], j)

    def key(j: int) -> tuple[int, int, int]:
        if (g_i := number.get(listed[j].task_id)) is None:
            return (1, j, 0)
        return (0, first[g_i[0]], g_i[1])

    return [listed[j] for j in sorted(range(len(listed)), key=key)]


def _said_alike(
    tasks: Sequence[TaskSummary], english: bool
) -> tuple[dict[str, str], list[list[TaskSummary]]]:
    """Each task's label said alone, by its id; and the live tasks said alike by their
    summary, each group by when they were created (a creation not known: first)."""
    labels: dict[str, str] = {}
    alike: defaultdict[str, list[TaskSummary]] = defaultdict(list)
    for task in tasks:
        said = _summary_label(task, english)
        labels[task.task_id] = said or spoken_name(task.task_id.rsplit("/", 1)[-1])
        if said is not None and task.state is not TaskState.STOPPED:
            alike[said].append(task)
    groups = [
        sorted(group, key=lambda t: (t.started_at or _LONG_AGO, t.task_id))
        for group in alike.values()
        if len(group) > 1
    ]
    return labels, groups


def _numbered(said: str, i: int, english: bool) -> str:
    """A label said with its place (from 0) among labels said alike."""
    if not english:
        return f"第{ordinal_word(i)}个{said}"
    return f"the {ORDINALS_EN[i]} {said}" if i < len(ORDINALS_EN) else f"{said} number {i + 1}"


_LONG_AGO = datetime.min.replace(tzinfo=UTC)  # a task whose creation is not known: first


def _summary_label(task: TaskSummary, english: bool) -> str | None:
    """The label of a task said by its summary; None for one said by its name."""
    name = task.task_id.rsplit("/", 1)[-1]
    # Unnamed, or the daily briefing (`daily-briefing/{user}`: its name is the user's).
    if not (unnamed(name) or task.kind is TaskKind.DAILY_BRIEFING):
        return None
    summary = spoken_summary(task.summary, english)
    said = speakable(summary or task.kind.value.replace("_", " "), 60, english=english)
    # One phrase: labels are said in lists ("; " between English items, "、" between
    # Chinese ones), and a comma or a sentence's end inside one would be heard as the end
    # of an item, or of the answer's sentences (and is where xiaozhi-server splits for TTS).
    return _LABEL_BREAKS[english].sub(" ", said).strip()


# What a label holds that a listener does not say back: "（", "：" ("8:30" is "830" both ways).
_UNSAID = re.compile(r"[^\w\s]+")


class Picked(NamedTuple):
    """A spoken task reference resolved: the task; or None, the question asked back and the
    tasks it named, in its order (ids: a place said next is one of them)."""

    task: TaskSummary | None
    question: str
    named: list[str]


def _kind_word(task: TaskSummary, english: bool) -> str:
    zh, en = KIND_WORDS.get(task.task_id.split("/", 1)[0], ("", ""))
    return en.removeprefix("a ") if english else zh


def _labels(tasks: list[TaskSummary], english: bool, among: Mapping[str, str]) -> list[str]:
    """The tasks as an answer names them (``among``: `task_labels` of the user's tasks; a
    deleted one as said alone): two of one name
    ("reborn", a web monitor and a threshold watch) by their kinds too ("网页监控 reborn"),
    as they can be asked for."""
    plain = [among.get(t.task_id) or task_label(t, english) for t in tasks]
    return [
        f"{_kind_word(t, english)} {label}".strip() if plain.count(label) > 1 else label
        for t, label in zip(tasks, plain, strict=True)
    ]


def names_a_place(said: str) -> bool:
    """True when ``said`` is a place and nothing else ("第二个", "the second one", "2")."""
    return _place_alone(said.strip().lower()) is not None


def _place_alone(text: str) -> re.Match[str] | None:
    """The place in ``text`` (lowercased) when it says nothing else; else None."""
    ordinal = _ORDINAL.search(text)
    if ordinal and not _PLACE_ONLY.sub("", _flat(text[: ordinal.start()] + text[ordinal.end() :])):
        return ordinal
    return None


def pick_task(
    tasks: list[TaskSummary],
    said: str,
    english: bool = False,
    *,
    named: Sequence[str] = (),
) -> Picked:
    """The task whose name (or summary) ``said`` names; ask back when none or several
    (in English when ``english``). A place alone ("第二个") is one in ``named``, the tasks the
    user's last asking answer named (a voice call carries no history: its caller keeps them),
    else among the first four."""
    key = _flat(said)
    exact = [t for t in tasks if _flat(t.task_id.rsplit("/", 1)[-1]) == key]
    # A deleted task is found by its name, but not counted or offered as one of yours, nor
    # asked about beside a live one of its name (the live one is meant).
    live = [t for t in tasks if t.state is not TaskState.STOPPED]
    exact = [t for t in exact if t in live] or exact
    if len(exact) == 1:
        return Picked(exact[0], "", [])
    if not live and not exact:
        return Picked(None, "You have no tasks yet." if english else "你还没有任何任务。", [])

    def asking(listed: list[TaskSummary], question: str) -> Picked:
        return Picked(None, question, [t.task_id for t in listed])

    sep = LIST_SEP_EN if english else "、"
    labels = [task_labels(live, en) for en in (False, True)]  # said among the live ones
    _, alike = _said_alike(live, english)  # kept together in every list said (`_said_order`)
    shown = _said_order(live, alike)[:4]  # the tasks an answer names
    shown_said = sep.join(_labels(shown, english, labels[english]))
    # Some of many named: how many there are is said, or four sound like all of them.
    if len(live) > 4:
        yours = f"You have {len(live)} tasks, like: {shown_said}"
        yours_zh = f"你有 {len(live)} 个任务，比如：{shown_said}"
    else:
        yours, yours_zh = f"Your tasks are: {shown_said}", f"你的任务有：{shown_said}"
    if names_nothing(said):  # after the exact name: a task may be called "monitor"
        if english:
            return asking(shown, f"Which task do you mean? {yours}.")
        return asking(shown, f"你说的是哪一个任务？{yours_zh}。")

    def called(key: str) -> list[TaskSummary]:
        # By its name, or its summary as written or as the voice says it in either language
        # ("提醒（每天 8点30分）", "threshold watch restarts"), with or without its punctuation;
        # first those it names whole, as a list said them ("提醒（每天 8点）", not also
        # "提醒（每天 8点30分）", of which it is a part). A place alone ("第二个") is one in the
        # list last said, not a part of a label said with its place among tasks said alike
        # ("第二个提醒（每天 8点30分）").
        bare, place = _UNSAID.sub("", key), names_a_place(said)

        def names(t: TaskSummary) -> list[str]:
            return [
                text or ""
                for en in (False, True)
                for text in (
                    t.summary,
                    spoken_summary(t.summary, en),
                    task_label(t, en) if place else labels[en][t.task_id],
                )
            ]

        def says(n: str) -> bool:  # ``n`` said whole, with or without its punctuation
            return key == _flat(n) or (bool(bare) and bare == _flat(_UNSAID.sub("", n)))

        whole = [t for t in live if any(n and says(n) for n in names(t))]
        return whole or [
            t
            for t in live
            if _part_of(key, t.task_id.rsplit("/", 1)[-1])
            or any(_part_of(key, n) or _part_of(bare, _UNSAID.sub("", n)) for n in names(t))
        ]

    def of_kind(key: str) -> list[TaskSummary]:
        """ "网页监控 reborn", "threshold watch reborn": a name with its kind."""
        return [
            t
            for t in tasks  # a deleted one too, as by its exact name
            if key
            in {
                _flat(f"{kind}{t.task_id.rsplit('/', 1)[-1]}")
                for kind in (_kind_word(t, False), _kind_word(t, True))
                if kind
            }
        ]

    # Else without the words that only say what it is ("backup任务", "the backup task").
    found = exact or of_kind(key) or called(key) or called(_WHAT_IT_IS.sub("", key))
    # "第二个" alone (not "second backup"): its place among the tasks the last answer named.
    ordinal = None if found else _place_alone(text := said.strip().lower())
    if ordinal:
        by_id = {t.task_id: t for t in tasks}  # the list named a deleted one too
        places = [by_id[i] for i in named if i in by_id] or shown
        index = _index_said(ordinal, text)
        if index is not None and -len(places) <= index < len(places):
            return Picked(places[index], "", [])
        # Past the end: how many, as for the fixes (not "没找到叫“第五个”的任务").
        if {t.task_id for t in places} == {t.task_id for t in live}:
            many_en = counted(len(places), "task", "tasks")
            return asking(places, _only_so_many(f"{len(places)} 个任务", many_en, english))
        # Counted among some of them only (the list the last answer named, or the first four):
        # "只有 4 个任务" would be untrue, so the list a place counts in is named.
        listed = sep.join(_labels(places, english, labels[english]))
        if english:
            return asking(
                places,
                f"By number I can pick only these {len(places)}: {listed}."
                " Say which number or the name.",
            )
        return asking(places, f"按第几个只能选这 {len(places)} 个：{listed}。请说第几个或任务名。")
    if len(found) == 1:
        return Picked(found[0], "", [])
    found = _said_order(found, alike)
    if not found:
        if english:
            return asking(shown, f"I found no task called “{said}”. {yours}.")
        return asking(shown, f"没找到叫“{said}”的任务。{yours_zh}。")
    listed_said = sep.join(_labels(found[:4], english, labels[english]))
    if english:
        return asking(
            found[:4], f"{len(found)} tasks fit: {listed_said}. Please say the full name."
        )
    return asking(found[:4], f"有 {len(found)} 个任务符合：{listed_said}。请说完整的名字。")
