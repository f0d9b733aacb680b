"""The rules of a task's input, applied by ``TaskService`` for every door.

One typed model per task type (strict numbers, http(s) URLs, parsed selectors, JSONPath, cron,
RE2 regexes, bounded lists); a named metric resolved to its source; the destination guard's
static check on every URL the user aims (literal private, loopback and metadata addresses
refused at creation, not at the first check); the notification targets by the push-config
rules of the caller's role. Every refusal names the field: ``ConfigError.errors`` is a list of
(location, message); the API turns it into a 422, MCP into a tool error, the web form into
its own field labels and the CLI into one line and exit 1. The doors only translate.

TaskError
 ├── InvalidTaskError    bad config or arguments: nothing was changed
 │    └── ConfigError    a config refused, field by field
 └── TaskNotFoundError   no such task for this user
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial, reduce
from operator import or_
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, WithJsonSchema

from ambient.briefing.config import BriefingConfig
from ambient.clients.guard import (
    DestinationGuard,
    DestinationLookupError,
    RefusedDestinationError,
    url_port,
)
from ambient.clients.notify.errors import PermanentNotifyError, SecretOriginError
from ambient.clients.notify.secrets import SecretResolver
from ambient.clients.notify.targets import TargetPolicy
from ambient.clients.tencent.client import NOT_CONFIGURED, TencentCloud
from ambient.domain.configs import STORED
from ambient.domain.field_errors import Location, Refused, field_errors, field_problems
from ambient.domain.notify import CHANNEL_TYPES, Target
from ambient.domain.push import PushChannel, fallback_address, stored_push_config
from ambient.domain.users import NAME_RULE
from ambient.refusals import N_, Refusal
from ambient.remediation.alerts import breach_refusal
from ambient.remediation.safety import PERMISSION_ORDER
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import registered
from ambient.watches.configs import WebMonitorConfig
from ambient.watches.notification_spec import NotificationSpec
from ambient.watches.reminders import NewsDigestConfig, ReminderConfig
from ambient.watches.threshold_config import (
    DEFAULT_CATALOGUE,
    HttpJsonSource,
    PrometheusSource,
    TencentMonitorSource,
    ThresholdWatchConfig,
    UnknownMetricError,
    resolve_metric,
)

TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class TaskError(Exception):
    """A task operation failed; the message says what to do."""


class InvalidTaskError(TaskError):
    """The request was invalid; nothing changed."""


class TaskStateError(InvalidTaskError):
    """The task's state does not allow this (stopped, or stopping after a delete)."""


def stopped(task_id: str) -> Refusal:
    # A Refusal, so a page says it in its reader's language (the English is the same).
    return Refusal("task %(task)s is stopped; create it again to restart it", task=repr(task_id))


class WorkerSilentError(TaskError):
    """The task's worker did not answer within QUERY_TIMEOUT (none running, or busy).
    ``sent``: what the request did, as its words say after the silent-worker words: True, sent
    (it may still apply, or it applied), False, nothing sent; None, a read (nothing asked).
    False with RETRY_UNSENT's words: this request sent nothing (an earlier try with the same
    request_id may still apply)."""

    def __init__(self, message: str, *, sent: bool | None = None) -> None:
        super().__init__(message)
        self.sent = sent


class TaskUnavailableError(TaskError):
    """Nothing in the request was wrong: the server could not do it now (a briefing's
    preparation failed); try again in a few minutes."""


class TaskNotFoundError(TaskError):
    """No task with that id belongs to the caller."""


class ConfigOvertaken(Exception):
    """An update merged over a config that another update replaced since: merged again over
    the one in force (``TaskService.update``), never written as it was."""


class ConfigError(InvalidTaskError):
    """A config was refused; ``errors`` holds (location inside the config, message) pairs,
    ``inputs`` the value refused at each (None where none was given), echoed as FastAPI's
    422s do."""

    def __init__(
        self,
        errors: Sequence[Refused],
        prefix: Location = ("config",),
        inputs: Sequence[Any] = (),
        head: str = "invalid config",
    ) -> None:
        self.errors = [(prefix + loc, message) for loc, message in errors]
        self.inputs = list(inputs) or [None] * len(self.errors)
        super().__init__(f"{head} — " + "; ".join(field_problems(self.errors)))

    @property
    def in_config(self) -> list[Refused]:
        """``errors`` located from the config itself (a leading "config" taken off)."""
        return [(loc[1:] if loc[:1] == ("config",) else loc, why) for loc, why in self.errors]

    @classmethod
    def of(cls, exc: ValidationError, model: type[BaseModel] | None = None) -> ConfigError:
        """The fields pydantic refused, each with the value it was given (a field the
        ``model`` validated does not have is said with those it has)."""
        inputs = [error["input"] for error in exc.errors(include_url=False)]
        return cls(field_errors(exc, model), inputs=inputs)


TaskType = Literal["web_monitor", "threshold_watch", "schedule", "news_digest"]
TaskConfig = WebMonitorConfig | ThresholdWatchConfig | ReminderConfig | NewsDigestConfig
CONFIG_MODELS: dict[str, type[TaskConfig]] = {
    "web_monitor": WebMonitorConfig,
    "threshold_watch": ThresholdWatchConfig,
    "schedule": ReminderConfig,
    "news_digest": NewsDigestConfig,
}


# The task types that run at a time of day.
SCHEDULED = frozenset({"schedule", "news_digest"})


def parse_config(kind: str, config: Any) -> TaskConfig:
    """The typed config of ``kind``; ConfigError naming each bad field otherwise."""
    model = CONFIG_MODELS.get(kind)
    if model is None:
        known = ", ".join(CONFIG_MODELS)
        raise ConfigError([((), f"unknown task type {kind!r}; use one of {known}")], ("type",))
    if not isinstance(config, dict):
        raise ConfigError([((), "must be a JSON object")])
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        raise ConfigError.of(exc, model) from None


def aimed_urls(config: BaseModel) -> list[tuple[Location, str]]:
    """Every URL of a config that the worker will call, with where it sits in the config."""
    urls: list[tuple[Location, str]] = []
    if isinstance(config, WebMonitorConfig):
        urls += [(("urls", i), str(url)) for i, url in enumerate(config.urls)]
    if isinstance(config, ReminderConfig | NewsDigestConfig | BriefingConfig):
        urls += [(("news_urls", i), str(url)) for i, url in enumerate(config.news_urls)]
    if isinstance(config, ThresholdWatchConfig) and isinstance(
        config.source, HttpJsonSource | PrometheusSource
    ):
        urls.append((("source", "url"), str(config.source.url)))
    return urls


# How long a create waits for a name's lookup: one that fails or takes longer is left to the
# checks, which look it up again before every connection and say what they found.
LOOKUP_WAIT = 2.0
# The creates' lookups run in threads of their own, a few at most: a nameserver that never
# answers holds these, not the threads the API's other work runs in (getaddrinfo cannot be
# cut short, only no longer waited for).
_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="create-lookup")


async def check_destinations(config: BaseModel, settings: Settings) -> None:
    """The guard on every aimed URL; ConfigError naming the field. By its form (scheme,
    userinfo, a literal address), then by what a name resolves to now (each name once): a
    name of a loopback or private address is refused as its literal address is, not created
    to fail every check."""
    guard = DestinationGuard(settings.fetch_allow_cidrs)
    aimed = aimed_urls(config)
    refused: dict[str, RefusedDestinationError] = {}
    names: dict[tuple[str, int], list[str]] = {}
    for _, url in aimed:
        try:
            host = guard.check_url_static(url)
        except RefusedDestinationError as exc:
            refused[url] = exc
            continue
        names.setdefault((host, url_port(url)), []).append(url)
    loop = asyncio.get_running_loop()

    async def look_up(host: str, port: int) -> RefusedDestinationError | None:
        try:
            lookup = loop.run_in_executor(_LOOKUPS, guard.check_host_blocking, host, port)
            await asyncio.wait_for(lookup, LOOKUP_WAIT)
        except RefusedDestinationError as exc:
            return exc
        except (DestinationLookupError, TimeoutError):
            pass
        return None

    found = await asyncio.gather(*(look_up(*name) for name in names))
    for urls, refusal in zip(names.values(), found, strict=True):
        refused.update({url: refusal for url in urls if refusal is not None})
    held = [(at, url, refused[url]) for at, url in aimed if url in refused]
    if held:
        raise ConfigError([(at, exc) for at, _, exc in held], inputs=[url for _, url, _ in held])


# A task's target left out is sent to the user's push-config channel of its type: none there.
NO_CHANNEL = N_(
    "a %(kind)s target, or a %(kind)s channel in your push config to send to (set_push_config)"
)
# An email or sms target left out is sent to the push config's channel of its type, else to the
# profile's email or phone: neither there (accepted, every alert failed "no email target").
NO_ADDRESS = N_(
    "an %(kind)s target without an address sends to your push config's %(kind)s channel, "
    "else to the %(field)s in your profile, and you have neither: give the address as "
    "target, add that channel (set_push_config) or set your %(field)s first"
)
# The profile's field an email or sms target left out falls back to, said in words.
PROFILE_FIELDS = {"email": N_("email"), "sms": N_("phone")}


def check_targets(
    config: BaseModel,
    *,
    user: str,
    is_admin: bool,
    settings: Settings,
    channels: Sequence[PushChannel] = (),
    email: str | None = None,
    phone: str | None = None,
    kept: Collection[str] = (),
) -> None:
    """The notification targets of a config, by the push-config rules (form per channel type,
    inbox only to the caller, own secrets only, guarded URLs); ConfigError naming the field.
    One without a target is sent to the user's push-config ``channels`` of its type, an email
    or sms one else to the profile's ``email`` or ``phone`` (`targets_for` fills it): taken
    when there is one, else refused saying so, unless its type is in ``kept`` (the config in
    force sends there already: an update that leaves it is not refused for it)."""
    policy = TargetPolicy.from_settings(settings)
    # (where, the target, what was sent there)
    aimed: list[tuple[Location, Any, BaseModel]] = [
        (("targets", index), target, target)
        for index, target in enumerate(getattr(config, "targets", []))
    ]
    spec = getattr(config, "notification", None)
    if isinstance(spec, NotificationSpec):
        aimed.append((("notification",), spec.target_of(), spec))

    def problem(target: Target) -> str | Refusal | None:
        named = bool(target.target.strip())
        if named or target.type == "inbox" or target.type not in CHANNEL_TYPES:
            return policy.problem(target, user=user, is_admin=is_admin)
        if fallback_address(target.type, list(channels), email, phone) or target.type in kept:
            return None
        if (field := PROFILE_FIELDS.get(target.type)) is not None:
            return Refusal(NO_ADDRESS, kind=target.type, field=Refusal(field))
        return Refusal(NO_CHANNEL, kind=target.type)

    refused = [
        ((at, said), sent.model_dump(exclude_unset=True))
        for at, target, sent in aimed
        if (said := problem(target)) is not None
    ]
    if refused:
        raise ConfigError([error for error, _ in refused], inputs=[sent for _, sent in refused])


def unaddressed(config: Mapping[str, Any]) -> set[str]:
    """The channel types a config (as stored, or as a task shows it) sends to without an
    address: its notification's and its targets' left empty (the inbox aside)."""
    sent: list[Any] = [*(config.get("targets") or [])]
    if isinstance(spec := config.get("notification"), dict):
        sent.append(spec)
    kinds: set[str] = set()
    for raw in sent:
        model = NotificationSpec if raw is spec else Target
        try:
            read = model.model_validate(raw, context=STORED)
        except ValidationError:
            continue  # not a target its sends can read: nothing kept for it
        target = read.target_of() if isinstance(read, NotificationSpec) else read
        if target.type != "inbox" and not target.target.strip():
            kinds.add(target.type)
    return kinds


def check_source_auth(
    config: ThresholdWatchConfig, *, user: str, is_admin: bool, settings: Settings
) -> None:
    """A metric source's secret, only if ``user`` may use it (as a target's ``secret:NAME``)
    and only to an origin it lists; ConfigError naming the source's secret, or the named
    metric whose catalogue entry carries it (the user never wrote its source)."""
    auth = getattr(config.source, "auth", None)
    if auth is None:
        return
    secrets = SecretResolver(settings.secrets)
    name = auth.secret.removeprefix("secret:")
    url = str(getattr(config.source, "url", ""))
    try:
        secrets.check_use(auth.secret, url, user=user, is_admin=is_admin)
    except PermanentNotifyError as exc:
        if config.metric is None:
            refused = [(("source", "auth", "secret"), str(exc))]
            raise ConfigError(refused, inputs=[auth.secret]) from None
        said = (
            f"metric {config.metric!r}: {exc}"
            if isinstance(exc, SecretOriginError)
            else f"metric {config.metric!r} is read with server secret {name!r}, which is not "
            f"available to {user}: ask the operator to list you on secret {name} (its users "
            "in AMBIENT_SECRETS)"
        )
        raise ConfigError([(("metric",), said)], inputs=[config.metric]) from None


def resolved_metric(config: ThresholdWatchConfig, settings: Settings) -> ThresholdWatchConfig:
    """A named metric with its catalogue source filled in; a name beside another source refused
    (the source would be watched under the name)."""
    catalogue = DEFAULT_CATALOGUE | settings.metric_catalogue

    def sourced(source: dict[str, Any]) -> ThresholdWatchConfig:
        return ThresholdWatchConfig.model_validate(
            config.model_dump(mode="json") | {"source": source}
        )

    try:
        if config.source is None and config.metric is not None:
            return sourced(resolve_metric(config.metric, catalogue))
        named = None
        if config.source is not None and config.metric in catalogue:
            named = sourced(catalogue[config.metric])
    except UnknownMetricError as exc:
        raise ConfigError([(("metric",), str(exc))]) from None
    except ValidationError as exc:
        raise ConfigError.of(exc) from None
    if named is not None and named.source != config.source:
        message = (
            f"{config.metric!r} is a named metric with its own source, but a different "
            "source was given too; give metric or source, not both"
        )
        raise ConfigError([(("metric",), message)])
    return config


# The config a task runs with now, read only when a rule needs it (None: none known).
InForce = Callable[[], Awaitable[dict[str, Any] | None]]


# A breach's remediation runs with its watch owner's rollback_permission: with none, every one
# was refused as it started, and the watch had said "remediation started".
MAY_NOT_REMEDIATE = N_(
    "a breach's remediation runs with your rollback_permission, which is 'none': an admin "
    "must grant dry_run or execute (or use on_breach 'notify')"
)


async def check_on_breach(
    config: ThresholdWatchConfig, permission: str, in_force: InForce | None
) -> None:
    """on_breach "remediate" only where a breach can start a remediation: on a metric naming a
    TKE Deployment for certain, and for an owner whose ``permission`` lets one run; ConfigError
    at on_breach saying why (the metric's: the reason its breach would record). A watch already
    remediating its source so (stored before this was refused) keeps it: an update that sets
    neither on_breach nor the source (``in_force``'s) changes other fields. A permission
    taken away is said at every update that keeps "remediate" (its breaches are refused)."""
    if config.on_breach != "remediate":
        return
    refused = breach_refusal(config.source, config.conditions)
    if refused is not None:
        before = await in_force() if in_force is not None else None
        source = config.source.model_dump(mode="json") if config.source else None
        kept = before and before.get("on_breach") == "remediate" and before.get("source") == source
        if not kept:
            raise ConfigError([(("on_breach",), refused)], inputs=[config.on_breach])
    if PERMISSION_ORDER.get(permission, 0) == 0:
        said = Refusal(MAY_NOT_REMEDIATE)
        raise ConfigError([(("on_breach",), said)], inputs=[config.on_breach])


async def checked_config(
    kind: str,
    config: Any,
    user: str,
    settings: Settings,
    db: Database,
    *,
    in_force: InForce | None = None,
) -> TaskConfig:
    """The typed config of ``kind`` for ``user``, every rule applied; ConfigError otherwise, and
    InvalidTaskError for a user nobody registered (nobody would see the task). ``in_force``: the
    config of the task an update replaces, read only when a rule needs it: its on_breach kept
    (``check_on_breach``), and a target without an address that it sends to already not refused
    for lacking one (its owner removed their email since: an unrelated change still applies;
    each send says what is missing)."""
    row = await registered(db, user, InvalidTaskError)
    if kind in SCHEDULED and isinstance(config, dict) and config.get("timezone") is None:
        # A schedule left without a zone runs in the user's own (as a briefing does), not at
        # the config's default: "08:00" means 08:00 where the user lives.
        if row.timezone:
            config = {**config, "timezone": row.timezone}
    parsed = parse_config(kind, config)
    if isinstance(parsed, ThresholdWatchConfig):
        parsed = resolved_metric(parsed, settings)
        if (
            isinstance(parsed.source, TencentMonitorSource)
            and not TencentCloud.from_settings(settings).configured
        ):
            # Accepted, every check failed "not configured" from the first minute on.
            raise ConfigError([(("source",), NOT_CONFIGURED)])
    await check_destinations(parsed, settings)
    channels = stored_push_config(row.push_config).channels
    targets_checked = partial(
        check_targets,
        parsed,
        user=user,
        is_admin=row.is_admin,
        settings=settings,
        channels=channels,
        email=row.email,
        phone=row.phone,
    )
    try:
        targets_checked()
    except ConfigError as bad:
        if in_force is None or not any(_no_address(why) for _, why in bad.errors):
            raise
        if (before := await in_force()) is None:  # not read: its rules apply whole
            raise
        targets_checked(kept=unaddressed(before))
    if isinstance(parsed, ThresholdWatchConfig):
        check_source_auth(parsed, user=user, is_admin=row.is_admin, settings=settings)
        await check_on_breach(parsed, row.rollback_permission, in_force)
    return parsed


def _no_address(why: Any) -> bool:
    return isinstance(why, Refusal) and why.msgid in (NO_ADDRESS, NO_CHANNEL)


def task_name(name: str | None, config: BaseModel) -> str:
    """The task's name: the one given (checked), or one derived from the config."""
    if name is None:
        # Derived from the config: creating the same task twice finds the first one.
        return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]
    if not TASK_NAME.fullmatch(name):
        # The name, not the config, is wrong: said so at every door (MCP said "invalid config").
        refused = [(("name",), Refusal(NAME_RULE))]
        raise ConfigError(refused, prefix=(), inputs=[name], head="invalid task name")
    return name


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    # Our config models are not recursive, so every $ref can be replaced by its definition.
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(defs[ref.removeprefix("#/$defs/")], defs), **extra}
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def config_schema(*models: type[BaseModel]) -> WithJsonSchema:
    """The self-contained schema (no $refs) of one config model or a union, published for an
    argument taken as a JSON object: ``parse_config`` refuses it field by field of its own type."""
    target: Any = reduce(or_, models)
    schema = TypeAdapter(target).json_schema()
    defs = schema.pop("$defs", {})
    return WithJsonSchema(_inline(schema, defs))


CONFIG_BY_TYPE = "the config of the kind named by `type`: " + ", ".join(
    f"{kind} → {model.__name__}" for kind, model in CONFIG_MODELS.items()
)
# The generic create's config, as the MCP tool and the API take it; an update's, of the task's
# own type (each door says so in its own words), a daily briefing's among them.
AnyConfig = Annotated[
    dict[str, Any], config_schema(*CONFIG_MODELS.values()), Field(description=CONFIG_BY_TYPE)
]
_UPDATED = (WebMonitorConfig, ThresholdWatchConfig, ReminderConfig, BriefingConfig)
NewConfig = Annotated[dict[str, Any], config_schema(*_UPDATED)]
# An update's fields merged over the config in force (ambient/watches/config_patch.py): none
# is required of it.
_patch = config_schema(*_UPDATED).json_schema
ConfigPatch = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {"anyOf": [{k: v for k, v in m.items() if k != "required"} for m in _patch["anyOf"]]}
    ),
]
