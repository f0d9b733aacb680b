"""A task's notification in the original form (``{"method": "send_sms", "phone_number": …}``)
and the targets it sends to (the inbox always)."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from ambient.domain.configs import ShortText, UserConfig, reading_stored
from ambient.domain.notify import ChannelType, Target

# Each channel is a method of its own name; send_sms and send_email are the original forms.
METHOD_CHANNELS = {"send_sms": "sms", "send_email": "email"} | {c: c for c in get_args(ChannelType)}


# The address field each method has besides `target` (which every method takes).
METHOD_FIELDS = {"phone_number": "sms", "email": "email"}


# phone_number belongs to the sms methods, email to the email methods, target to every method;
# a field of another method is refused by name (it used to become the address:
# {"method": "email", "phone_number": ...} mailed the phone number). Without an address, the
# caller's push config's channel of that type is used when sending, then their profile's.
class NotificationSpec(UserConfig):
    """The original form: a method and its address (omitted: your configured one)."""

    method: str = Field(description=f"one of: {', '.join(sorted(METHOD_CHANNELS))}")
    phone_number: ShortText | None = Field(
        default=None, description="send_sms / sms only: the number (or use target)"
    )
    email: ShortText | None = Field(
        default=None, description="email / send_email only: the address (or use target)"
    )
    target: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None,
        description="the address for the method: URL, email address, phone number, robot key "
        "or secret:NAME; omitted: your configured channel of that method",
    )

    @model_validator(mode="before")
    @classmethod
    def _as_it_ran(cls, data: Any, info: ValidationInfo) -> Any:
        """A stored spec keeps the one address it was sent to (target, else phone_number,
        else email), in a field of its method or in ``target``."""
        if not (isinstance(data, dict) and reading_stored(info)):
            return data
        data = dict(data)
        channel = METHOD_CHANNELS.get(str(data.get("method")))
        address_field = next((f for f in ("target", *METHOD_FIELDS) if data.get(f)), None)
        for name in ("target", *METHOD_FIELDS):
            if name != address_field:
                data.pop(name, None)
        if address_field in METHOD_FIELDS and METHOD_FIELDS[address_field] != channel:
            data["target"] = data.pop(address_field)
        return data

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METHOD_CHANNELS:
            raise ValueError(f"unknown method {value!r}; use one of {sorted(METHOD_CHANNELS)}")
        return value

    @field_validator("phone_number", "email")
    @classmethod
    def _of_its_method(cls, value: str | None, info: ValidationInfo) -> str | None:
        method = info.data.get("method")
        if not value or method is None:  # empty: no address; no method: that error first
            return value
        owner = METHOD_FIELDS[str(info.field_name)]
        if METHOD_CHANNELS[method] != owner:
            methods = ", ".join(repr(m) for m, c in sorted(METHOD_CHANNELS.items()) if c == owner)
            raise ValueError(
                f"{info.field_name} is only for method {methods}, not {method!r}; "
                f"give the {METHOD_CHANNELS[method]} address in `target`, or use method "
                f"{owner!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_address(self) -> NotificationSpec:
        given = [f for f in ("target", *METHOD_FIELDS) if getattr(self, f)]
        if len({getattr(self, f) for f in given}) > 1:
            raise ValueError(f"{given[1]}: two addresses given ({' and '.join(given)}); give one")
        return self

    def target_of(self) -> Target:
        channel = METHOD_CHANNELS[self.method]
        address = self.target or self.phone_number or self.email or ""
        # By the wire names: `channel` is accepted both before and after targets took `type`.
        return Target.model_validate({"channel": channel, "target": address})


# A task's notification in the original form, as every task config takes it.
Notification = Annotated[
    NotificationSpec | None,
    Field(description="the original form: {method, target | email | phone_number}"),
]


def notification_targets(spec: NotificationSpec | None, extra: list[Target]) -> list[Target]:
    """Targets of a task; the inbox always, so every hit is visible on the web page."""
    targets = [Target.model_validate({"channel": "inbox"})]
    for target in ([spec.target_of()] if spec else []) + extra:
        if target not in targets:
            targets.append(target)
    return targets
