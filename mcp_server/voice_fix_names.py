"""A fix (remediation) as the voice names it: its workload and metric, and what tells it from a
fix said alike (its metric as written, namespace, cluster); and the waiting fix a spoken reference
("第一个", "checkout 的错误率") picks, or the question asked back. Deterministic, no LLM.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType

from ambient.domain.identifiers import TKE_CLUSTER_ID
from ambient.remediation.views import RemediationSummary
from mcp_server.voice_references import (
    LIST_SEP_EN,
    ORDINAL,
    PLACE_ONLY,
    UNSAID,
    WHAT_IT_IS,
    counted,
    flat,
    index_said,
    names_nothing,
    only_so_many,
    ordinal_word,
    part_of,
    spoken_name,
)
from mcp_server.voice_replies import reply_said
from mcp_server.voice_sentences import METRIC_WORDS

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
        if on and "集群" not in on:  # a console name of its own saying so ("生产集群-广州")
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


def _runs_called(
    runs: list[RemediationSummary], key: str, *, whole_only: bool = False
) -> list[RemediationSummary]:
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
        heard = (*(UNSAID.sub("", s) for s in said), f"{namespace}的{run_about(r)}")
        if on := cluster_said(cluster):
            heard += (f"{on}集群的{run_about(r)}", f"{on}的{run_about(r)}")
        return (
            *(r.service, r.alert_type, *said, *heard),
            *(f"{workload}的{r.alert_type}", f"{r.alert_type} on {workload}"),
        )

    whole = [r for r in runs if any(flat(said) == key for said in names(r))]
    if whole or whole_only:
        return whole
    return [
        r
        for r in runs
        if any(part_of(key, said) for said in (*names(r), run_about(r), run_about(r, True)))
    ]


def named_whole(runs: list[RemediationSummary], said: str) -> RemediationSummary | None:
    """The one run ``said`` names by a name of it said whole ("cancel-api", "批准 checkout"),
    not a part of one or a place: a name that holds a reply's word is that name."""
    keys = {flat(said), WHAT_IT_IS.sub("", flat(said))}
    named = {r.run_key: r for r in runs if flat(_where(r)[2]) in keys} or {
        r.run_key: r for key in keys for r in _runs_called(runs, key, whole_only=True)
    }
    return next(iter(named.values())) if len(named) == 1 else None


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
    # A pronoun, or a reply that names no fix ("可以", "approve it"): never quoted back as a name.
    if names_nothing(said) or reply_said(said, approve=True).names_no_fix:
        if english:
            return None, f"Which one do you mean? {_which_waits(runs, english)}"
        return None, f"你说的是哪一个？{_which_waits(runs)}"
    text = said.strip().lower()
    words = flat(text)
    # As said, else without the words that only say what it is ("checkout的修复", "the fix").
    matches = _runs_called(runs, words) or _runs_called(runs, WHAT_IT_IS.sub("", words))
    # A place alone ("number 2", "批准第二个"); with more words, the one run they name
    # ("gateway number 2", "first responder") before the place ("number 4, the search one").
    ordinal = ORDINAL.search(text)
    if ordinal and (
        len(matches) != 1
        or not PLACE_ONLY.sub(
            "", WHAT_IT_IS.sub("", flat(text[: ordinal.start()] + text[ordinal.end() :]))
        )
    ):
        index = index_said(ordinal, text)
        if index is not None and -len(runs) <= index < len(runs):
            return runs[index], ""
        return None, only_so_many(
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
    return None, _asked_back(runs, matches, english)


def _asked_back(
    runs: list[RemediationSummary], matches: list[RemediationSummary], english: bool
) -> str:
    """Which of ``matches`` (of ``runs``): three named at most, as many as fit ``ROOM`` (long
    names ran the answer into its cut before its question); past them the list is said to go
    on, or those named sound like all. Fixes of one name but where they run are named once,
    each by where ("都是…的修复：第六个在 prod、第七个在 staging")."""
    places = [runs.index(r) for r in matches[:3]]
    if english:
        named = [
            f"number {i + 1}, {run_about(r, english, runs)}"
            for i, r in zip(places, matches, strict=False)
        ]
        listed = _fitting(named, LIST_SEP_EN)
        more = f"{LIST_SEP_EN}and more" if len(matches) > listed.count(LIST_SEP_EN) + 1 else ""
        return f"{len(matches)} fit: {listed}{more}. Say which number."
    names = [run_about(r, among=runs) for r in matches[:3]]
    parts = [_QUALIFIED.fullmatch(name) for name in names]
    # "都是" of every match, not only the three named.
    every = parts + [_QUALIFIED.fullmatch(run_about(r, among=runs)) for r in matches[3:]]
    shared = {(part[1], part[3]) for part in every if part}
    if None not in every and len(shared) == 1:
        workload, metric = shared.pop()
        listed = "、".join(
            f"第{ordinal_word(i)}个在{part[2]}"
            for i, part in zip(places, parts, strict=False)
            if part
        )
        more = " 等" if len(matches) > 3 else ""
        # A space between Chinese and Latin words only ("checkout 的错误率", "ratio 的修复").
        fix = f"{workload}{' ' if workload[-1:].isascii() else ''}{metric}"
        said = f"都是{fix}{' ' if fix[-1:].isascii() else ''}的修复：{listed}{more}"
        return f"有 {len(matches)} 个符合，{said}。请说第几个。"
    listed = _fitting(
        [f"第{ordinal_word(i)}个{n}" for i, n in zip(places, names, strict=True)], "、"
    )
    more = " 等" if len(matches) > listed.count("、") + 1 else ""
    return f"有 {len(matches)} 个符合：{listed}{more}。请说第几个。"


# A fix named with where it runs: "checkout（guangzhou 集群）的错误率".
_QUALIFIED = re.compile(r"(.+?)（(.+)）(的.+)")
ROOM = 160  # characters of an ask-back's list, its question said after it


def _fitting(named: list[str], separator: str) -> str:
    """The first of ``named`` joined, as many as fit ``ROOM`` (the first always)."""
    listed = named[0]
    for name in named[1:]:
        if len(listed) + len(separator) + len(name) > ROOM:
            break
        listed += separator + name
    return listed
