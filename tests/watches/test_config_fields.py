"""Every field of a config means something: a field of another method, a contradiction or an
unknown field is refused by name where a config enters; stored configs read as they ran."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from ambient.briefing.config import BriefingConfig
from ambient.briefing.models import BriefingRun
from ambient.domain.configs import STORED
from ambient.domain.field_errors import field_errors
from ambient.domain.notify import NotificationKind, Target
from ambient.domain.push import PushChannel, PushConfig, stored_push_config
from ambient.remediation.alerts import Alert
from ambient.remediation.runs import RemediationInput
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.models import ThresholdWatchInput, WebMonitorInput
from ambient.watches.notification_spec import NotificationSpec, notification_targets
from ambient.watches.reminders import NewsDigestConfig, ReminderConfig, ReminderRun
from ambient.watches.threshold_config import ThresholdWatchConfig

SOURCE = {"type": "http_json", "url": "https://example.com/v", "json_path": "$.v"}
WEB = {"urls": ["https://example.com/"]}
ABOVE_1 = {"op": "above", "value": 1}
ALERT = {
    "source": "manual",
    "cluster_id": "cls-test0001",
    "namespace": "default",
    "workload": "checkout",
}


def refused(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[str, str]]:
    """(location, message) of each refusal, as the doors show them."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


def decoded(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """A workflow input as the Temporal pydantic converter decodes it (no context)."""
    return TypeAdapter(model).validate_json(TypeAdapter(dict[str, Any]).dump_json(data))


# --- a method's fields belong to it -----------------------------------------------------


def test_a_phone_number_given_to_the_email_method_is_refused_by_name() -> None:
    errors = refused(
        WebMonitorConfig,
        {**WEB, "notification": {"method": "email", "phone_number": "+8613800000000"}},
    )
    assert [loc for loc, _ in errors] == ["notification.phone_number"]
    assert "only for method 'send_sms', 'sms', not 'email'" in errors[0][1]


def test_an_email_given_to_the_sms_method_is_refused_by_name() -> None:
    errors = refused(NotificationSpec, {"method": "send_sms", "email": "ops@example.com"})
    assert [loc for loc, _ in errors] == ["email"]


def test_two_different_addresses_for_one_method_are_refused() -> None:
    errors = refused(
        NotificationSpec, {"method": "email", "email": "a@example.com", "target": "b@example.com"}
    )
    assert "email: two addresses given (target and email)" in errors[0][1]


def test_each_method_takes_its_own_field_or_target() -> None:
    sms = NotificationSpec.model_validate({"method": "send_sms", "phone_number": "+123456789"})
    mail = NotificationSpec.model_validate({"method": "email", "target": "ops@example.com"})
    assert (sms.target_of().type, sms.target_of().target) == ("sms", "+123456789")
    assert (mail.target_of().type, mail.target_of().target) == ("email", "ops@example.com")


def test_a_method_without_an_address_leaves_it_to_the_configured_channel() -> None:
    # An empty target is filled at send from the caller's channel of that type.
    spec = NotificationSpec.model_validate({"method": "email"})
    assert notification_targets(spec, [])[1] == Target(type="email", target="")


def test_a_stored_notification_reads_as_it_ran() -> None:
    # Accepted before the rule: it was sent to the phone number by email; it loads as that.
    run = decoded(
        WebMonitorInput,
        {
            "user": "alice",
            "task": "web-monitor/alice/t",
            "config": {
                **WEB,
                "notification": {"method": "email", "phone_number": "+8613800000000"},
            },
        },
    )
    assert run.config.notification.target_of() == Target(type="email", target="+8613800000000")


def test_a_selector_for_a_url_that_is_not_watched_is_refused_by_name() -> None:
    errors = refused(WebMonitorConfig, {**WEB, "selectors": {"https://example.org/": "main"}})
    assert "selectors: 'https://example.org/' is not one of the watched urls" in errors[0][1]
    kept = WebMonitorConfig.model_validate({**WEB, "selectors": {"https://example.com": "main"}})
    assert kept.selector_for("https://example.com/") == "main"


@pytest.mark.parametrize(
    "url",
    ["https://example.com/新闻", "https://News.Example.com/a", "https://example.com/s?q=数据库"],
)
def test_a_selector_keyed_by_its_url_as_written_is_used(url: str) -> None:
    # urls are read as URLs (percent-encoded, host in lower case): the key, written as in
    # urls, was refused as "not one of the watched urls".
    config = WebMonitorConfig.model_validate({"urls": [url], "selectors": {url: "#news"}})
    assert config.selector_for(str(config.urls[0])) == "#news"


def test_two_selectors_for_one_page_are_refused_by_name() -> None:
    # Keys are read as URLs: two keys of one page must not leave one selector unused.
    selectors = {"https://Example.com/a": "#x", "https://example.com/a": "#y"}
    errors = refused(WebMonitorConfig, {"urls": ["https://example.com/a"], "selectors": selectors})
    assert errors[0][0] == "selectors"
    assert "'https://example.com/a' is one page with two selectors" in errors[0][1]
    same = {"https://Example.com/a": "#x", "https://example.com/a": "#x"}
    assert WebMonitorConfig.model_validate({"urls": ["https://example.com/a"], "selectors": same})


def test_a_stored_monitor_drops_the_selector_it_never_used() -> None:
    run = decoded(
        WebMonitorInput,
        {
            "user": "alice",
            "task": "web-monitor/alice/t",
            "config": {**WEB, "selectors": {"https://example.org/": "main"}},
        },
    )
    assert run.config.selectors == {}


def test_a_page_listed_twice_is_refused_by_name() -> None:
    # The same page written twice (URLs read as one) was checked twice at every check: its
    # failures counted twice, a change of it stored and notified twice.
    errors = refused(
        WebMonitorConfig, {"urls": ["https://example.com/news", "https://EXAMPLE.com:443/news"]}
    )
    assert errors[0][0] == "urls"
    assert "'https://example.com/news' is listed twice (urls[0] and urls[1])" in errors[0][1]


@pytest.mark.parametrize("model", [ReminderConfig, NewsDigestConfig])
def test_a_digest_page_listed_twice_is_refused_by_name(model: type[BaseModel]) -> None:
    # Each listed page is a check of each run: the page twice in the digest.
    pages = ["https://example.com/news", "https://example.com/a", "HTTPS://example.com/news"]
    errors = refused(model, {"news_urls": pages})
    assert errors[0][0] == "news_urls"
    assert "is listed twice (news_urls[0] and news_urls[2])" in errors[0][1]
    run = ReminderRun.model_validate(
        {
            "user": "alice",
            "task": "reminder/alice/d",
            "config": {"news_urls": pages, "action": "news_digest"},
        }
    )
    assert len(run.config.news_urls) == 3  # a stored digest runs as it was recorded


@pytest.mark.parametrize("model", [ReminderConfig, NewsDigestConfig])
def test_a_digest_category_is_checked_as_the_keyword_it_is(model: type[BaseModel]) -> None:
    # A digest's categories are the keywords of its pages' checks: "re:[" failed every check
    # of every page, and " " or "re:" (empty text matches anywhere) made every new line a hit.
    pages = {"news_urls": ["https://example.com/news"]}
    # "re:\\b" matches empty inside a line: a hit on every line with a word; "re:a|\\b" too,
    # though its first match in a line may be the "a".
    categories = ["re:[", " ", "数据库", "re:", "re:故障?", "re:\\b", "re:\\bAI\\b", "re:a|\\b"]
    errors = refused(model, pages | {"categories": categories})
    assert [loc for loc, _ in errors] == [
        "categories.0",
        "categories.1",
        "categories.3",
        "categories.5",
        "categories.7",
    ]
    assert "'[' is not a valid regular expression" in errors[0][1]
    assert "'' matches empty text, so every line" in errors[2][1]
    assert "'\\\\b' matches empty text, so every line" in errors[3][1]
    assert "'a|\\\\b' matches empty text, so every line" in errors[4][1]
    run = ReminderRun.model_validate(
        {
            "user": "alice",
            "task": "reminder/alice/d",
            "config": pages | {"action": "news_digest", "categories": ["re:[", " "]},
        }
    )
    assert run.config.categories == ["re:[", " "]  # a stored digest reads as it ran


# Each is drawn as nothing: format characters and joiners (Cf), a lone combining mark (Mn),
# the Hangul fillers and the braille blank (letters and a symbol fonts draw blank), the Khmer
# inherent vowels, and unassigned code points Unicode keeps ignorable.
UNSEEN = (
    "\u3164 \u115f \u1160 \uffa0 \u2800 \u034f \u180e \u200b \u200c \u200d \u200e \u200f "
    "\u2060 \u2061 \u2062 \u2063 \u2064 \ufeff \u00ad \u17b4 \ufe0f \u2065 \ufff0 \U000e0001"
).split()


@pytest.mark.parametrize("model", [WebMonitorConfig, NewsDigestConfig, BriefingConfig])
def test_a_keyword_or_category_nobody_can_see_is_refused_and_one_with_a_letter_is_kept(
    model: type[BaseModel],
) -> None:
    field = "keywords" if model is WebMonitorConfig else "categories"
    pages = WEB if model is WebMonitorConfig else {"news_urls": ["https://example.com/news"]}
    for word in [*UNSEEN, " \u3164\u2800 ", "\u200b" * 3]:
        ((where, said),) = refused(model, pages | {field: ["AI", word]})
        codes = " ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(word.strip()))
        assert where == f"{field}.1", word
        assert f"a keyword of only invisible characters ({codes}) matches nothing" in said, word
    # A letter (Thai, decomposed, after a filler) is something to read: kept as written.
    seen = ["\u0e01", "e\u0301", "\u3164AI", "数据库"]
    assert getattr(model.model_validate(pages | {field: seen}), field) == seen


@pytest.mark.parametrize("model", [WebMonitorConfig, NewsDigestConfig, BriefingConfig])
def test_a_keyword_or_category_with_an_invisible_character_inside_a_word_is_refused(
    model: type[BaseModel],
) -> None:
    field = "keywords" if model is WebMonitorConfig else "categories"
    pages = WEB if model is WebMonitorConfig else {"news_urls": ["https://example.com/news"]}
    for word, code, at in (
        ("err\u200bor", "U+200B", 4),
        ("time\u00adout", "U+00AD", 5),
        ("a\u2060b", "U+2060", 2),
        ("数据\ufeff库", "U+FEFF", 3),
        ("err\u200dor", "U+200D", 4),  # a joiner joins nothing between Latin letters
    ):
        ((where, said),) = refused(model, pages | {field: ["AI", word]})
        assert where == f"{field}.1", word
        assert f"an invisible character inside it ({code} at character {at})" in said, word
    # Written text that holds such characters for a reason is kept as written: Chinese and
    # Japanese, accents as combining marks, emoji joined into one (a family, a rainbow flag, a
    # skin tone), a Persian word with its non-joiner, a flag of tags, one at a word's edge.
    seen = [
        "数据库故障",
        "エラー",
        "e\u0301te\u0301",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\U0001f3f3\ufe0f\u200d\U0001f308",
        "\U0001f469\U0001f3fd\u200d\U0001f4bb",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
        "\u3164AI",
    ]
    assert getattr(model.model_validate(pages | {field: seen}), field) == seen


@pytest.mark.parametrize("model", [WebMonitorConfig, NewsDigestConfig, BriefingConfig])
def test_a_pattern_with_a_raw_invisible_character_is_refused_as_a_keyword_is(
    model: type[BaseModel],
) -> None:
    """A `re:` pattern was taken as written: U+200B inside its literal matched nothing a
    person reads on a page, and the watch never told of a change."""
    field = "keywords" if model is WebMonitorConfig else "categories"
    pages = WEB if model is WebMonitorConfig else {"news_urls": ["https://example.com/news"]}
    for word, said_here in (
        ("re:err\u200bor", "an invisible character inside it (U+200B at character 7)"),
        ("re:(time\u00adout|down)", "an invisible character inside it (U+00AD at character 9)"),
        ("re:\u2060", "a keyword of only invisible characters (U+2060)"),
        ("re:  ", "a keyword of only spaces matches every line"),
    ):
        ((where, said),) = refused(model, pages | {field: ["AI", word]})
        assert (where, said_here in said) == (f"{field}.1", True), (word, said)
    # An escape names the character without holding it; an accent or an emoji's joiner shapes
    # what it sits on, as in a keyword: kept as written.
    seen = ["re:err\\x{200B}or", "re:cafe\u0301", "re:\U0001f3f3\ufe0f\u200d\U0001f308"]
    assert getattr(model.model_validate(pages | {field: seen}), field) == seen


def test_a_stored_monitor_checks_a_page_listed_twice_once() -> None:
    urls = ["https://example.com/", "https://example.org/", "https://example.com"]
    run = decoded(
        WebMonitorInput, {"user": "alice", "task": "web-monitor/alice/t", "config": {"urls": urls}}
    )
    assert [str(url) for url in run.config.urls] == urls[:2]


# --- threshold or conditions --------------------------------------------------------------


def test_a_threshold_beside_other_conditions_is_refused_by_name() -> None:
    errors = refused(
        ThresholdWatchConfig,
        {"source": SOURCE, "threshold": 100, "conditions": [{"op": "below", "value": 5}]},
    )
    assert len(errors) == 1 and errors[0][1].startswith("Value error, threshold: 100 is")
    assert "give threshold or conditions, not both" in errors[0][1]


@pytest.mark.parametrize(
    ("combine", "hysteresis", "reason"),
    [
        # No value is above 90 and below 10 at once: the watch could never breach.
        ("all", 0, "no value is above 90 and below 10 at once"),
        # Recovery needs a value at most 40 (90 - 50) and at least 60 (10 + 50): none is.
        ("any", 50, "no value is 50 (hysteresis) inside both lines"),
    ],
)
def test_conditions_that_can_never_breach_or_never_recover_are_refused(
    combine: str, hysteresis: float, reason: str
) -> None:
    config = {
        "source": SOURCE,
        "conditions": [{"op": "above", "value": 90}, {"op": "below", "value": 10}],
        "combine": combine,
        "hysteresis": hysteresis,
    }
    errors = refused(ThresholdWatchConfig, config)
    assert len(errors) == 1 and reason in errors[0][1]
    # Outside the band with a margin that fits, and a stored watch, are read as given.
    assert ThresholdWatchConfig.model_validate(config | {"combine": "any", "hysteresis": 40})
    stored = ThresholdWatchConfig.model_validate(config, context=STORED)
    assert stored.combine == combine and stored.hysteresis == hysteresis


def test_any_of_lines_that_cover_every_value_is_refused() -> None:
    # Every value is above 10 or below 20: the first check breaches and it never recovers.
    config = {
        "source": SOURCE,
        "conditions": [{"op": "above", "value": 10}, {"op": "below", "value": 20}],
        "combine": "any",
    }
    errors = refused(ThresholdWatchConfig, config)
    assert len(errors) == 1 and "every value is above 10 or below 20" in errors[0][1]
    assert ThresholdWatchConfig.model_validate(config | {"combine": "all"})


def test_a_tke_metric_period_its_api_does_not_serve_is_refused_by_name() -> None:
    # TKE metrics are read with DescribeStatisticData: periods 60, 300, 3600 or 86400 only.
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/TKE2",
        "metric": "K8sWorkloadCpuCoreUsed",
        "dimensions": {"tke_cluster_instance_id": "cls-1", "workload_name": "api"},
        "period": 10,
    }
    errors = refused(ThresholdWatchConfig, {"source": source, "threshold": 2})
    assert errors == [
        (
            "source.tencent_monitor.period",
            "Value error, QCE/TKE2 metrics are read with DescribeStatisticData, whose period "
            "is 60, 300, 3600 or 86400 seconds",
        )
    ]
    assert ThresholdWatchConfig.model_validate({"source": source | {"period": 60}, "threshold": 2})
    # A CVM metric keeps its own periods (10 s exists there), and a stored watch reads as it ran.
    assert ThresholdWatchConfig.model_validate(
        {"source": source | {"namespace": "QCE/CVM"}, "threshold": 2}
    )
    stored = ThresholdWatchConfig.model_validate({"source": source, "threshold": 2}, context=STORED)
    assert stored.source is not None and stored.source.period == 10  # type: ignore[union-attr]


def test_a_cloud_monitor_metric_without_dimensions_is_refused_by_name() -> None:
    # Cloud Monitor reads are refused without the instance's dimensions: such a watch was
    # created and failed every check ("InvalidParameterValue.Dimensions ...").
    source = {"type": "tencent_monitor", "namespace": "QCE/CVM", "metric": "CPUUsage"}
    errors = refused(ThresholdWatchConfig, {"source": source, "threshold": 90})
    assert [loc for loc, _ in errors] == ["source"]
    assert "dimensions: QCE/CVM/CPUUsage is read for one instance" in errors[0][1]
    given = source | {"dimensions": {"InstanceId": "ins-1"}}
    assert ThresholdWatchConfig.model_validate({"source": given, "threshold": 90})
    stored = ThresholdWatchConfig.model_validate(
        {"source": source, "threshold": 90}, context=STORED
    )
    assert stored.source is not None and stored.source.dimensions == {}  # type: ignore[union-attr]


@pytest.mark.parametrize("region", ["shanghai", "Guangzhou", "ap_guangzhou", "ap-guangzhou "])
def test_a_metric_region_not_written_as_a_region_name_is_refused_by_name(region: str) -> None:
    """The region is sent as X-TC-Region, where anything else fails every check, and a breach
    of such a watch started no remediation (its alert refused the region): refused here, as
    an alert refuses it; a stored watch reads as it ran."""
    source = {
        "type": "tencent_monitor",
        "namespace": "QCE/TKE2",
        "metric": "K8sWorkloadCpuCoreUsed",
        "dimensions": {"tke_cluster_instance_id": "cls-1", "workload_name": "api"},
        "region": region,
    }
    errors = refused(ThresholdWatchConfig, {"source": source, "threshold": 2})
    assert [field for field, _ in errors] == ["source.tencent_monitor.region"]
    assert "must be a Tencent Cloud region name, e.g. ap-guangzhou" in errors[0][1]
    assert ThresholdWatchConfig.model_validate(
        {"source": source | {"region": "ap-shanghai-fsi"}, "threshold": 2}
    )
    stored = ThresholdWatchConfig.model_validate({"source": source, "threshold": 2}, context=STORED)
    assert stored.source is not None and stored.source.region == region  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://prom:9090/api/v1/query?query=up", "http://prom:9090"),  # from a browser
        ("http://prom:9090/api/v1", "http://prom:9090"),
        ("http://prom:9090/api/v1/", "http://prom:9090"),
        ("http://prom:9090/api/v1/query_range", "http://prom:9090"),
        ("http://prom:9090/graph", "http://prom:9090"),
        ("http://prom:9090/graph?g0.expr=up&g0.tab=1", "http://prom:9090"),
        ("http://prom:9090/query?g0.expr=up", "http://prom:9090"),  # Prometheus 3's page
        ("https://ops.example.com/prometheus/graph", "https://ops.example.com/prometheus"),
        ("http://prom:9090/?g0.expr=up", "http://prom:9090"),
        ("http://prom:9090/#/alerts", "http://prom:9090"),
    ],
)
def test_a_prometheus_url_of_a_page_or_another_endpoint_is_refused_naming_the_base(
    url: str, base: str
) -> None:
    """The query is asked at the url's /api/v1/query: a page's or another endpoint's URL (one
    with a query string, as a browser shows it) was asked at …/graph/api/v1/query and said as
    an HTTP 404 from the URL given, or at …/api/v1/query?query=up/api/v1/query."""
    source = {"type": "prometheus", "url": url, "query": "up"}
    errors = refused(ThresholdWatchConfig, {"source": source, "threshold": 1})
    assert errors == [
        (
            "source.prometheus.url",
            f"Value error, {url} is a Prometheus page or endpoint, not the server's base URL: "
            f"give {base}, and the PromQL in query",
        )
    ]
    stored = ThresholdWatchConfig.model_validate({"source": source, "threshold": 1}, context=STORED)
    assert stored.source is not None and str(stored.source.url) == url  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url",
    [
        "http://prom:9090",
        "http://prom:9090/api/v1/query",  # its query endpoint, read there
        "http://prom:9090/api/v1/query/",
        "https://ops.example.com/prometheus/",  # served under a prefix
        "http://vmselect:8481/select/0/prometheus",  # VictoriaMetrics cluster
        "https://grafana.example.com/api/datasources/proxy/uid/prom",  # through Grafana
    ],
)
def test_a_prometheus_base_url_or_its_query_endpoint_is_accepted(url: str) -> None:
    source = {"type": "prometheus", "url": url, "query": "up"}
    assert ThresholdWatchConfig.model_validate({"source": source, "threshold": 1})


def test_a_config_read_back_with_both_saying_the_same_is_accepted() -> None:
    first = ThresholdWatchConfig.model_validate({"source": SOURCE, "threshold": 100})
    again = ThresholdWatchConfig.model_validate(first.model_dump(mode="json"))
    assert again == first and [(c.op, c.value) for c in again.conditions] == [("above", 100)]


def test_a_stored_watch_with_both_ran_on_its_conditions() -> None:
    run = decoded(
        ThresholdWatchInput,
        {
            "user": "alice",
            "task": "threshold-watch/alice/t",
            "config": {
                "source": SOURCE,
                "threshold": 100,
                "conditions": [{"op": "below", "value": 5}],
            },
        },
    )
    assert run.config.threshold is None
    assert [(c.op, c.value) for c in run.config.conditions] == [("below", 5)]


# --- unknown fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "data", "where"),
    [
        (Target, {"type": "webhook", "taget": "https://example.com/h"}, "taget"),
        (PushChannel, {"type": "inbox", "kind": ["watch"]}, "kind"),
        (PushConfig, {"channels": [], "quiet": {"start": "22:00"}}, "quiet"),
        (PushConfig, {"quiet_hours": {"start": "22:00", "end": "07:00", "to": "x"}}, "to"),
        (WebMonitorConfig, {**WEB, "keyword": ["AI"]}, "keyword"),
        (WebMonitorConfig, {**WEB, "targets": [{"type": "inbox", "x": 1}]}, "x"),
        (WebMonitorConfig, {**WEB, "notification": {"method": "inbox", "to": "me"}}, "to"),
        (ThresholdWatchConfig, {"source": {**SOURCE, "path": "$.x"}, "threshold": 1}, "path"),
        (ThresholdWatchConfig, {"metric": "m", "conditions": [{**ABOVE_1, "v": 1}]}, "v"),
        (ReminderConfig, {"message": "hi", "when": "09:00"}, "when"),
        (NewsDigestConfig, {"news_urls": ["https://example.com/"], "hours": 9}, "hours"),
        (BriefingConfig, {"window": "06:00-10:00"}, "window"),
        (Alert, {**ALERT, "severity": "high"}, "severity"),
        (Alert, {**ALERT, "verify": {"source": SOURCE, "healthy": [ABOVE_1], "x": 1}}, "x"),
    ],
)
def test_an_unknown_field_is_refused_by_name(
    model: type[BaseModel], data: dict[str, Any], where: str
) -> None:
    errors = refused(model, data)
    assert [loc.rsplit(".", 1)[-1] for loc, _ in errors] == [where], errors
    assert errors[0][1] == "Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("model", "data", "said"),
    [
        (WebMonitorConfig, {**WEB, "keyword": ["AI"]}, "did you mean keywords? (fields: "),
        (WebMonitorConfig, {**WEB, "targets": [{"type": "inbox", "taget": 1}]}, "mean target?"),
        (WebMonitorConfig, {**WEB, "notification": {"method": "inbox", "to": "me"}}, "email"),
        (WebMonitorConfig, {**WEB, "interval_seconds": 60}, "(fields: check_interval_minutes"),
        (ThresholdWatchConfig, {"source": {**SOURCE, "path": "$.x"}, "threshold": 1}, "json_path"),
        (ReminderConfig, {"message": "hi", "when": "09:00"}, "(fields: type, hour, minute"),
        (BriefingConfig, {"window": "06:00-10:00"}, "not a field here"),
    ],
)
def test_an_unknown_field_is_said_with_the_fields_there(
    model: type[BaseModel], data: dict[str, Any], said: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    [(_, refusal)] = field_errors(caught.value, model)
    assert str(refusal).startswith("not a field here") and said in str(refusal), refusal


@pytest.mark.parametrize("model", [Target, PushChannel])
def test_a_target_with_an_empty_kinds_list_is_refused(model: type[BaseModel]) -> None:
    errors = refused(model, {"type": "inbox", "kinds": []})
    assert [loc for loc, _ in errors] == ["kinds"] and "sends nothing" in errors[0][1]


def test_a_saved_channel_with_no_kinds_reads_as_it_worked() -> None:
    config = stored_push_config({"channels": [{"type": "inbox", "kinds": []}]})
    assert config.channels[0].kinds == []


def test_stored_inputs_with_fields_ignored_then_still_decode() -> None:
    target = {"type": "webhook", "target": "https://example.com/h", "taget": "x"}
    web = decoded(
        WebMonitorInput,
        {
            "user": "alice",
            "task": "web-monitor/alice/t",
            "config": {**WEB, "keyword": ["AI"], "targets": [target]},
        },
    )
    assert web.config.targets == [Target(type="webhook", target="https://example.com/h")]
    watch = decoded(
        ThresholdWatchInput,
        {
            "user": "alice",
            "task": "threshold-watch/alice/t",
            "config": {"source": {**SOURCE, "path": "$"}, "threshold": 1, "note": "x"},
        },
    )
    assert watch.config.source.url.host == "example.com"
    reminder = decoded(
        ReminderRun,
        {
            "user": "alice",
            "task": "reminder/alice/r",
            "config": {"message": "hi", "when": "9", "notification": {"method": "inbox", "x": 1}},
        },
    )
    assert reminder.config.message == "hi"
    briefing = decoded(
        BriefingRun,
        {"user": "alice", "task_id": "daily-briefing/alice", "config": {"window": "x"}},
    )
    assert briefing.config == BriefingConfig()
    remediation = decoded(
        RemediationInput, {"alert": {**ALERT, "severity": "high"}, "user": "alice"}
    )
    assert remediation.alert == Alert.model_validate(ALERT)


def test_a_saved_push_config_with_an_ignored_field_still_reads() -> None:
    config = stored_push_config(
        {"channels": [{"type": "email", "target": "a@example.com", "kind": ["watch"]}]}
    )
    assert [(c.type, c.target) for c in config.channels] == [("email", "a@example.com")]
    assert config.channels[0].kinds is not None and len(config.channels[0].kinds) == 3


def test_a_stored_channel_without_kinds_reads_the_same_for_showing_and_for_sending() -> None:
    problems: list[str] = []
    config = stored_push_config(
        {
            "channels": [{"channel": "webhook", "target": "not-a-url"}, {"target": "x"}],
            "quiet_hours": {"start": "late"},
        },
        problems,
    )
    (channel,) = config.channels
    assert (channel.type, channel.target) == ("webhook", "not-a-url")
    assert channel.kinds == [
        NotificationKind.BRIEFING,
        NotificationKind.WATCH,
        NotificationKind.REMEDIATION,
    ]
    assert not channel.wants(NotificationKind.SYSTEM) and config.quiet_hours is None
    assert [p.split(":")[0] for p in problems] == [
        "channels[1].type",
        "quiet_hours.start",
        "quiet_hours.end",
    ]


@pytest.mark.parametrize(
    ("selectors", "as_before"),
    [
        ({"https://example.com/a": "#x"}, True),  # keyed as read: the same selector
        ({"https://Example.com/a": "#x"}, False),  # unused before, applies now
        ({"https://example.com/a": "#x", "https://EXAMPLE.com/a": "#y"}, False),  # last wins
    ],
)
def test_a_stored_monitors_page_state_from_before_is_compared_only_under_its_old_rules(
    selectors: dict[str, str], as_before: bool
) -> None:
    # Selector keys are now read as URLs: a stored monitor whose keys were written otherwise
    # reads a page by another selector than before. Its page state saved before (reading None)
    # was compared with the first read by the new one: the rules' difference was notified as
    # a change of the page. Comparable only when the old lookup (exact key) gave the same.
    url = "https://example.com/a"
    run = decoded(
        WebMonitorInput,
        {
            "user": "alice",
            "task": "web-monitor/alice/t",
            "config": {"urls": [url], "selectors": selectors},
        },
    )
    config = run.config
    assert config.compares_with(url, None) is as_before
    assert config.compares_with(url, config.reading(url)) is True
    assert config.compares_with(url, "0" * 16) is False


def test_a_url_longer_than_its_column_once_percent_encoded_is_refused_a_stored_one_read() -> None:
    """620 characters as typed, 5,420 as sent: taken, then every check's text of it refused by
    PostgreSQL (its column holds 2,048), so the monitor never completed a check."""
    url = "https://example.com/" + "数" * 600
    assert refused(WebMonitorConfig, {"urls": [url]}) == [
        (
            "urls.0",
            "Value error, the URL is 5,420 characters as sent (its non-ASCII characters "
            "percent-encoded): at most 2,048",
        )
    ]
    stored = WebMonitorConfig.model_validate({"urls": [url]}, context=STORED)
    assert len(str(stored.urls[0])) == 5420
    assert str(WebMonitorConfig.model_validate({"urls": [url[:220]]}).urls[0]).startswith(
        "https://example.com/%E6%95%B0"
    )
