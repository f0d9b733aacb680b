"""Generated logs with known templates, for the reduction tests and benchmark.

About 200 templates (English, Chinese and mixed) built from message patterns placed under
several service prefixes, with near-duplicates on purpose: patterns that differ in one
constant word ("Cache hit" / "Cache miss", "declined: insufficient funds" / "declined: card
expired"), in length, in one CJK word, or only in their level. Variables are of every kind
masking must handle (numbers, durations, sizes, percentages, uuids, hex ids, trace ids,
hashes, IPv4/IPv6 with ports, URLs, paths, e-mails, quoted values) and word variables that
no mask can see (user, job, table and service names drawn from tens to hundreds of values).
Counts follow a Zipf law; ERROR templates are rarer; bursts of chosen ERROR templates are
injected in short windows. Every line carries its true template, so grouping can be scored.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

DAY = datetime(2026, 11, 21, tzinfo=UTC)
_SLOT = re.compile(r"\{(\w+)\}")

PATTERNS: list[tuple[str, str]] = [
    ("INFO", "Request {uuid} completed in {ms} with status {code}"),
    ("INFO", "User {user} logged in from {ip}"),
    ("INFO", "User {user} logged out after {sec}"),
    ("INFO", "GET {path} returned {code} in {ms}"),
    ("INFO", "POST {path} returned {code} in {ms}"),
    ("INFO", "Cache hit for key {hex8}"),
    ("INFO", "Cache miss for key {hex8}"),
    ("INFO", "Scheduled job {job} started"),
    ("INFO", "Scheduled job {job} finished in {sec}"),
    ("INFO", "Connected to {ipport} as {user}"),
    ("INFO", "Loaded {n} rows from table {table} in {ms}"),
    ("INFO", "Health check passed for {host}"),
    ("INFO", "Sent email to {email} with subject {quoted}"),
    ("INFO", "Fetched {url} in {ms}"),
    ("INFO", "Trace {trace} span {hex8} closed"),
    ("INFO", "{ip} GET {path} HTTP/1.1 {code} {size}"),
    ("INFO", "Listening on [{ip6}]:{n}"),
    ("DEBUG", "Acquired lock {uuid} on {path}"),
    ("DEBUG", "Released lock {uuid} on {path}"),
    ("WARNING", "Slow query on table {table} took {ms}"),
    ("WARNING", "Retrying request to {url} attempt {n} of 5"),
    ("WARNING", "Memory usage at {pct} on {host}"),
    ("WARNING", "Disk usage at {pct} on {host}"),
    ("WARNING", "Connection pool nearly exhausted: {n} of {n} in use"),
    ("WARNING", "Deprecated API {path} called by {user}"),
    ("WARNING", "Cache miss rate is {pct}"),
    ("ERROR", "Cache miss rate is {pct}"),
    ("ERROR", "Failed to connect to {ipport}: connection refused"),
    ("ERROR", "Failed to connect to {ipport}: connection reset by peer"),
    ("ERROR", "Timeout after {ms} waiting for {url}"),
    ("ERROR", "Payment {uuid} declined: insufficient funds"),
    ("ERROR", "Payment {uuid} declined: card expired"),
    ("ERROR", "Unhandled exception in handler {path}: NullPointerException"),
    ("ERROR", "Checksum mismatch for object {sha}"),
    ("ERROR", "Job {job} failed: {quoted}"),
    ("CRITICAL", "Database primary {ipport} is unreachable, failing over"),
    ("CRITICAL", "Out of memory: killed process {n} ({user})"),
    ("INFO", "用户{user}登录成功，来源IP：{ip}"),
    ("INFO", "订单{n}创建成功，金额{money}元"),
    ("INFO", "任务{job}执行完成，耗时{ms}"),
    ("INFO", "Kafka消费者{group}提交offset {n}"),
    ("WARNING", "接口{path}响应缓慢，耗时{ms}"),
    ("WARNING", "缓存命中率下降到{pct}"),
    ("WARNING", "Pod {pod} 重启次数过多：{n}次"),
    ("ERROR", "连接数据库失败，重试{n}次"),
    ("ERROR", "连接Redis失败，重试{n}次"),
    ("ERROR", "支付回调验签失败，订单号{n}"),
    ("ERROR", "调用下游服务{svc}超时，耗时{ms}"),
    ("ERROR", "MySQL主从同步延迟{sec}，超过阈值"),
    ("CRITICAL", "磁盘空间不足：{path} 剩余 {size}"),
]
PREFIXES = [
    "",
    "[OrderService]",
    "[PaymentService]",
    "[UserService]",
    "[Gateway]",
    "[Scheduler]",
    "[InventoryService]",
    "[订单服务]",
]


def _names(rng: random.Random, count: int, parts: list[str]) -> list[str]:
    found: set[str] = set()
    while len(found) < count:
        found.add("".join(rng.choice(parts) for _ in range(rng.randint(2, 3))))
    return sorted(found)


def _words(rng: random.Random, count: int) -> list[str]:
    heads = ["nightly", "hourly", "cleanup", "sync", "export", "import", "rebuild", "audit"]
    tails = ["report", "tmp", "index", "orders", "users", "ledger", "cache", "search", "mail"]
    found: set[str] = set()
    while len(found) < count:
        found.add(f"{rng.choice(heads)}-{rng.choice(tails)}")
    return sorted(found)


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _slots(rng: random.Random) -> dict[str, Callable[[], str]]:
    users = _names(rng, 300, ["al", "bo", "ce", "da", "li", "wang", "zh", "ang", "mei", "xu"])
    jobs = _words(rng, 40)
    tables = _names(rng, 30, ["order", "user", "item", "ledger", "stock", "log", "event"])
    services = _names(rng, 15, ["user", "order", "pay", "stock", "search", "mail"])
    groups = _names(rng, 10, ["billing", "audit", "stream", "sink"])
    segments = ["api", "v1", "v2", "orders", "users", "items", "var", "log", "data", "tmp"]
    r = rng.random
    return {
        "uuid": lambda: "-".join(_hex(rng, k) for k in (8, 4, 4, 4, 12)),
        "hex8": lambda: _hex(rng, 8),
        "trace": lambda: _hex(rng, 32),
        "sha": lambda: _hex(rng, 40),
        "ms": lambda: f"{rng.randint(1, 30000)}ms",
        "sec": lambda: f"{r() * 600:.1f}s",
        "n": lambda: str(rng.randint(0, 100000)),
        "code": lambda: rng.choice(["200", "201", "204", "301", "404", "500", "503"]),
        "ip": lambda: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        "ipport": lambda: (
            ".".join(str(rng.randint(1, 254)) for _ in range(4)) + f":{rng.randint(1024, 65535)}"
        ),
        "ip6": lambda: "fe80::" + ":".join(_hex(rng, 4) for _ in range(3)),
        "path": lambda: "/" + "/".join(rng.choice(segments) for _ in range(rng.randint(2, 4))),
        "url": lambda: f"https://svc{rng.randint(1, 9)}.example.com/api/{_hex(rng, 6)}",
        "email": lambda: f"{rng.choice(users)}@example.com",
        "quoted": lambda: "'" + rng.choice(["daily report", "invoice", "reset password"]) + "'",
        "pct": lambda: f"{rng.randint(50, 99)}%",
        "size": lambda: f"{rng.randint(1, 900)}MB",
        "money": lambda: f"{r() * 1000:.2f}",
        "host": lambda: f"node-{rng.randint(1, 60)}",
        "pod": lambda: f"web-{_hex(rng, 6)}-{''.join(rng.choices(string.ascii_lowercase, k=5))}",
        "user": lambda: rng.choice(users),
        "job": lambda: rng.choice(jobs),
        "table": lambda: rng.choice(tables),
        "svc": lambda: rng.choice(services) + "-service",
        "group": lambda: rng.choice(groups),
    }


@dataclass
class Template:
    index: int
    level: str
    text: str  # with {slot} placeholders


@dataclass
class Burst:
    template: int
    start: datetime
    end: datetime
    lines: int


@dataclass
class GeneratedLogs:
    templates: list[Template]
    bursts: list[Burst]
    # (time, level, message, true template index), in time order
    lines: list[tuple[datetime, str, str, int]] = field(default_factory=list)


def templates(seed: int = 7, count: int = 200) -> list[Template]:
    """`count` templates: every pattern once without a prefix, the rest under prefixes."""
    rng = random.Random(seed)
    pairs = [(p, pattern) for pattern in range(len(PATTERNS)) for p in range(len(PREFIXES))]
    chosen = {(0, pattern) for pattern in range(len(PATTERNS))}
    rest = [pair for pair in pairs if pair not in chosen]
    rng.shuffle(rest)
    chosen.update(rest[: max(0, count - len(chosen))])
    out = []
    for index, (prefix, pattern) in enumerate(sorted(chosen)):
        level, text = PATTERNS[pattern]
        head = PREFIXES[prefix]
        out.append(Template(index, level, f"{head} {text}" if head else text))
    return out


def generate(
    lines: int = 100_000, *, seed: int = 7, template_count: int = 200, bursts: int = 5
) -> GeneratedLogs:
    """A day of logs: Zipf-distributed templates (ERROR 20x rarer, WARNING 3x), at least
    three lines of each, and `bursts` ERROR templates with extra lines in 10-minute windows."""
    rng = random.Random(seed)
    found = templates(seed, template_count)
    slots = _slots(rng)
    factor = {"ERROR": 0.05, "CRITICAL": 0.05, "WARNING": 0.3}
    ranks = list(range(1, len(found) + 1))
    rng.shuffle(ranks)
    weights = [factor.get(t.level, 1.0) / rank**1.1 for t, rank in zip(found, ranks, strict=True)]
    burst_lines = min(lines // 10, 2000 * bursts)
    picks = [t.index for t in found for _ in range(3)]
    remaining = max(0, lines - len(picks) - burst_lines)
    picks += rng.choices([t.index for t in found], weights=weights, k=remaining)
    seconds = 86400.0
    stamped = [(rng.random() * seconds, i) for i in picks]
    errors = [t.index for t in found if t.level == "ERROR"]
    chosen = rng.sample(errors, min(bursts, len(errors)))
    injected: list[Burst] = []
    for n, index in enumerate(chosen):
        start = rng.uniform(3600, seconds - 3600)
        count = burst_lines // max(1, len(chosen)) + (n < burst_lines % max(1, len(chosen)))
        stamped += [(start + rng.random() * 600, index) for _ in range(count)]
        begin = DAY + timedelta(seconds=start)
        injected.append(Burst(index, begin, begin + timedelta(seconds=600), count))
    stamped.sort()
    out = GeneratedLogs(templates=found, bursts=injected)
    for offset, index in stamped:
        template = found[index]
        message = _SLOT.sub(lambda m: slots[m[1]](), template.text)
        out.lines.append((DAY + timedelta(seconds=offset), template.level, message, index))
    return out


def as_json_line(when: datetime, level: str, message: str) -> str:
    return json.dumps(
        {"time": when.isoformat().replace("+00:00", "Z"), "level": level, "message": message},
        ensure_ascii=False,
    )


def as_text_line(when: datetime, level: str, message: str) -> str:
    return f"{when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} {level} {message}"


def file_lines(logs: GeneratedLogs, *, text_every: int = 0) -> Iterator[str]:
    """JSON lines; with `text_every` = k, every k-th line as timestamped text instead."""
    for number, (when, level, message, _) in enumerate(logs.lines, 1):
        if text_every and number % text_every == 0:
            yield as_text_line(when, level, message)
        else:
            yield as_json_line(when, level, message)
