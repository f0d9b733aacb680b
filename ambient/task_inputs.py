"""The front door of task configs: one typed model per task type, checked where input enters.

MCP tools, the API and the CLI parse a config here before handing it to ``TaskService``:
the domain model of its type (strict numbers, http(s) URLs, parsed selectors, JSONPath, cron,
RE2 regexes, bounded lists), then the destination guard's static check on every URL the
user aims (literal private, loopback and metadata addresses refused at creation, not at
the first check). Every refusal names the field: ``ConfigError.errors`` is a list of
(location, message), the API turns it into a 422 and MCP into a tool error.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError, WithJsonSchema

from ambient.clients.notify.targets import TargetPolicy
from ambient.domain.reminders import NewsDigestConfig, ReminderConfig
from ambient.domain.watches import (
    NotificationSpec,
    ThresholdWatchConfig,
    WebMonitorConfig,
)
from ambient.settings import Settings

# The URL check and its error live with TaskService, which runs it for every door (the web
# form too); a door runs it first as well, to name every bad field in one answer.
from ambient.tasks import ConfigError, Location, check_destinations

TaskType = Literal["web_monitor", "threshold_watch", "schedule", "news_digest"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "web_monitor": WebMonitorConfig,
    "threshold_watch": ThresholdWatchConfig,
    "schedule": ReminderConfig,
    "news_digest": NewsDigestConfig,
}
# Task id prefix -> the config type an update of that task takes.
UPDATE_TYPES = {"web-monitor": "web_monitor", "threshold-watch": "threshold_watch"}


def _errors_of(error: ValidationError) -> list[tuple[Location, str]]:
    return [
        (tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
        for e in error.errors(include_url=False)
    ]


def parse_config(kind: str, config: Any) -> BaseModel:
    """The typed config of ``kind``; ConfigError naming each bad field otherwise."""
    model = CONFIG_MODELS.get(kind)
    if model is None:
        known = ", ".join(TASK_TYPES)
        raise ConfigError([((), f"unknown task type {kind!r}; use one of {known}")], ("type",))
    if not isinstance(config, dict):
        raise ConfigError([((), "must be a JSON object")])
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        raise ConfigError(_errors_of(exc)) from None


def check_targets(config: BaseModel, *, user: str, is_admin: bool, settings: Settings) -> None:
    """The notification targets of a config, by the push-config rules (form per channel type,
    inbox only to the caller, own secrets only, guarded URLs); ConfigError naming the field."""
    policy = TargetPolicy.from_settings(settings)
    refused: list[tuple[Location, str]] = []
    for index, target in enumerate(getattr(config, "targets", [])):
        problem = policy.problem(target, user=user, is_admin=is_admin)
        if problem is not None:
            refused.append((("targets", index), problem))
    spec = getattr(config, "notification", None)
    if isinstance(spec, NotificationSpec):
        problem = policy.problem(spec.target_of(), user=user, is_admin=is_admin)
        if problem is not None:
            refused.append((("notification",), problem))
    if refused:
        raise ConfigError(refused)


def checked_config(
    kind: str,
    config: Any,
    settings: Settings,
    *,
    user: str | None = None,
    is_admin: bool = False,
) -> dict[str, Any]:
    """Parse and check a config where it enters; the JSON form to hand to TaskService.

    With ``user``, its notification targets are checked for that user too.
    """
    parsed = parse_config(kind, config)
    check_destinations(parsed, settings)
    if user is not None:
        check_targets(parsed, user=user, is_admin=is_admin, settings=settings)
    return parsed.model_dump(mode="json")


def update_type(task_id: str) -> str | None:
    """The config type an update of ``task_id`` takes (None: let TaskService decide)."""
    prefix = task_id.split("/", 1)[0]
    return UPDATE_TYPES.get(prefix, "schedule" if prefix == "reminder" else None)


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


def config_json_schema(*models: type[BaseModel]) -> dict[str, Any]:
    """Self-contained JSON schema (no $refs) of one config model, or of a union of them."""
    target: Any = models[0]
    for model in models[1:]:
        target = target | model
    schema = TypeAdapter(target).json_schema()
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, defs)
    return inlined


def config_schema(*models: type[BaseModel]) -> WithJsonSchema:
    """Publish the typed schema of a config argument that is validated by ``parse_config``.

    The argument is taken as a JSON object and parsed by type in the tool or route, so a
    bad config gets one error per bad field of its own type (not one per union member).
    """
    return WithJsonSchema(config_json_schema(*models))


ANY_CONFIG = (WebMonitorConfig, ThresholdWatchConfig, ReminderConfig, NewsDigestConfig)
CONFIG_BY_TYPE = (
    "the config of the kind named by `type`: web_monitor → WebMonitorConfig, threshold_watch "
    "→ ThresholdWatchConfig, schedule → ReminderConfig, news_digest → NewsDigestConfig"
)
