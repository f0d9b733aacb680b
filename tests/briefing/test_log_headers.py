"""What a line's header holds is no word of its template: klog's code place and quoted
message, syslog's host and process, nginx's process and connection ids, an access log's
request; and a level's words never become wildcards of another level's template."""

from __future__ import annotations

from datetime import UTC, date

from ambient.briefing.logreport import LogReducer
from ambient.clients.log_formats import parse_line
from ambient.domain.loglevels import level_and_message

DAY = date(2026, 11, 23)


def templates(lines: list[str]) -> list[tuple[str, int, str]]:
    """(level, count, template) of ``lines`` read as a file's, most severe and frequent first."""
    reducer = LogReducer()
    for line in lines:
        record = parse_line(line, "app.log", UTC, DAY)
        assert record is not None, line
        reducer.add(record.time, *level_and_message(record.content))
    return [(t.level, t.count, t.template) for t in reducer.report().templates]


def test_klogs_structured_messages_are_their_own_templates_without_the_code_place() -> None:
    """Kubernetes' components (1.21 on) write `E1122 ... file.go:42] "Message" k="v"`: the code
    place began every template with "<*>]" and the quoted message, masked as a value, left
    no word: four different errors were one "<*>] <*> <*> <*>", said "something something"."""
    lines = [
        'E1122 02:00:01.123456    1234 pod_workers.go:1298] "Error syncing pod, skipping" '
        'err="failed to \\"StartContainer\\" for \\"app\\"" pod="default/web-7d9f8"',
        'E1122 02:00:02.123456    1234 pod_workers.go:1298] "Error syncing pod, skipping" '
        'err="context deadline exceeded" pod="default/api-5c6d7"',
        'E1122 02:00:03.123456    1234 kubelet_volumes.go:245] "Orphaned pod found" '
        "podUID=5a6b7c8d",
        'E1122 02:00:04.123456    1234 remote_image.go:180] "PullImage from image service failed" '
        'err="rpc error: code = NotFound" image="registry.example.com/app:v2"',
        "I1122 02:00:05.000001    1234 kubelet.go:2410] SyncLoop ADD source=api pods=[default/web]",
    ]
    rows = templates(lines)
    assert [(level, count) for level, count, _ in rows] == [
        ("ERROR", 2),
        ("ERROR", 1),
        ("ERROR", 1),
        ("INFO", 1),
    ], rows
    said = [template for *_, template in rows]
    assert said[0].startswith("Error syncing pod, skipping"), said
    assert {said[1], said[2]} == {
        "Orphaned pod found podUID=<*>",
        "PullImage from image service failed err=<*> image=<*>",
    }, said
    assert said[3] == "SyncLoop ADD source=api pods=[default/web]", said
    record = parse_line(lines[2], "kubelet.log", UTC, DAY)
    assert record is not None and record.content["logger"] == "kubelet_volumes.go:245"


def test_a_klog_line_behind_kubectls_timestamp_keeps_its_level() -> None:
    """`kubectl logs --timestamps` puts an RFC 3339 time before each line: a klog line behind
    it was UNKNOWN, its header its template ("<*> <*> <*> <*>] ..."), and no error counted."""
    rows = templates(
        [
            "2026-11-22T02:00:01.123456789Z E1122 02:00:01.000000       1 x.go:1] db down",
            "2026-11-22T02:00:02.123456789Z W1122 02:00:02.000000       1 x.go:2] db slow",
        ]
    )
    assert rows == [("ERROR", 1, "db down"), ("WARNING", 1, "db slow")], rows


def test_syslogs_host_and_process_are_no_words_of_the_message() -> None:
    """RFC 5424 from three hosts: one message was three templates, each a third of its count
    ("web0 payapi <*> <*> - connection lost to db <*>", 5 times of 13); RFC 3164's host and
    process id too."""
    lines = [
        f"<11>1 2026-11-22T0{n % 10}:00:00.000+08:00 web{n % 3} payapi {1000 + n} ID{n} - "
        f"connection lost to db 10.0.3.{n}"
        for n in range(13)
    ]
    lines += [
        f"<11>Nov 22 10:00:0{n} web{n} payapi[{n}]: connection lost to db 10.0.3.{n}"
        for n in range(3)
    ]
    lines.append(
        '<12>1 2026-11-22T11:00:00Z web1 payapi 9 ID47 [origin ip="10.0.0.1"] queue depth 5000'
    )
    assert templates(lines) == [
        ("ERROR", 16, "payapi: connection lost to db <*>"),
        ("WARNING", 1, "payapi: queue depth <*>"),
    ]


def test_a_warning_never_makes_wildcards_of_an_errors_template() -> None:
    """nginx's error log: one [warn] line beside an [error] one turned the error's words into
    wildcards ("<*>#<*>: *<*> <*> <*> <*> ... upstream, client: ..."); and its process,
    thread and connection ids began every template."""
    error = (
        "2026/11/22 10:00:02 [error] 123#123: *458 upstream timed out (110: Connection timed "
        "out) while reading response header from upstream, client: 1.2.3.6"
    )
    warn = (
        "2026/11/22 10:00:03 [warn] 123#123: *459 an upstream response is buffered to a "
        "temporary file /var/cache/1 while reading upstream, client: 1.2.3.7"
    )
    assert templates([error, warn]) == [
        (
            "ERROR",
            1,
            "upstream timed out (<*>: Connection timed out) while reading response header "
            "from upstream, client: <*>",
        ),
        (
            "WARNING",
            1,
            "an upstream response is buffered to a temporary file <*> while reading upstream, "
            "client: <*>",
        ),
    ]


def test_an_access_logs_requests_are_named_by_route_and_status() -> None:
    """Every failing request read "GET <*> <*> <*> <*> <*> <*>": the quoted request masked as
    one value, the status as a number, whatever route failed and how."""

    def request(n: int, line: str, status: int) -> str:
        return (
            f'10.1.1.{n} - - [22/Nov/2026:01:00:0{n % 10} +0800] "{line} HTTP/1.1" {status} 47 '
            '"https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64)"'
        )

    lines = [request(n, f"GET /api/orders/{2200 + n}?page={n}", 502) for n in range(4)]
    lines += [request(n, f"GET /api/users/{n}/profile", 500) for n in range(3)]
    lines += [request(n, "POST /api/pay", 503) for n in range(2)]
    lines += [request(n, f"GET /static/app.{n}f9a.js", 404) for n in range(2)]
    assert templates(lines) == [
        ("ERROR", 4, "GET /api/orders/<*> Bad Gateway"),
        ("ERROR", 3, "GET /api/users/<*>/profile Internal Server Error"),
        ("ERROR", 2, "POST /api/pay Service Unavailable"),
        ("WARNING", 2, "GET /static/<*> Not Found"),
    ]


def test_a_routes_values_and_tokens_are_masked_its_words_kept() -> None:
    from ambient.briefing.logtemplates import route

    assert route("/api/orders/7?page=2") == "/api/orders/<*>?<*>"
    assert route("/api/users/3/profile") == "/api/users/<*>/profile"
    # A token in the path (a reset link's, a webhook's) is no word of the template, spoken or
    # pushed: 20 characters or more, digits or not.
    assert route("/reset/ZXhhbXBsZVRva2VuTG9uZ2Vy") == "/reset/<*>"
    assert route("/static/app%20v.js") == "/static/<*>"
    assert route("/") == "/" and route("/api/getUser") == "/api/getUser"


def test_a_klog_value_with_escaped_quotes_is_one_value() -> None:
    """klog writes quotes inside a value escaped (err="failed to \\"StartContainer\\" …"): the
    mask ended the value at the first one, and each container's error was a template of its
    own, its words and backslashes the template ("err=<*>StartContainer\\<*>app\\<*>…")."""
    lines = [
        'E1122 02:00:01.123456    1234 pod_workers.go:1298] "Error syncing pod, skipping" '
        'err="failed to \\"StartContainer\\" for \\"app\\" with CrashLoopBackOff: \\"back-off '
        '5m0s restarting failed container=app pod=web-7d9f8_default(a1)\\"" pod="default/web"',
        'E1122 02:00:02.123456    1234 pod_workers.go:1298] "Error syncing pod, skipping" '
        'err="failed to \\"StartContainer\\" for \\"worker\\" with ImagePullBackOff: '
        '\\"Back-off pulling image \\\\\\"repo/w:1\\\\\\"\\"" pod="jobs/worker-55"',
        'E1122 02:00:03.123456    1234 pod_workers.go:1298] "Error syncing pod, skipping" '
        'err="context deadline exceeded" pod="default/api-5c6d7"',
    ]
    assert templates(lines) == [("ERROR", 3, "Error syncing pod, skipping err=<*> pod=<*>")]
