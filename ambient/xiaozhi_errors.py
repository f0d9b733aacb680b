"""How a 小智 device's service (ambient.xiaozhi) refuses, and the words it says so in.

DeviceError
├── InvalidDeviceError   bad input, nothing changed (API: 422 naming the field)
│   ├── AmbiguousDeviceError  a reference naming several devices (API: 422 at the ref)
│   └── UnregisteredUserError  a user named nobody registered (API: 422 at its field)
├── DeviceRefusedError   the caller may not (API: 403)
└── DeviceNotFoundError  no such device among the caller's (API: 404)
"""

from __future__ import annotations

from ambient.refusals import N_, Refusal, said_back

# Said to a member whose consent the owner (or an admin) withdrew, by role, not the owner's name.
WITHDRAWN = N_(
    "Its owner (or an admin) withdrew your consent to %(device)s: you may allow it again once "
    "its owner or an admin lets you back (ask its owner)"
)
NOT_ALLOWED = N_("%(speaker)s has not allowed %(device)s; it answers %(speakers)s; nothing changed")
SPEAKERS_WITHDRAWN = N_(
    "speakers: %(speakers)s withdrawn from %(owner)s's devices: let them back first (ambient "
    "xiaozhi device let-back --user %(owner)s NAME, or DELETE "
    "/xiaozhi/withdrawn/NAME?user=%(owner)s), or register it without them; nothing changed"
)
NOT_WITHDRAWN = N_(
    "%(speaker)s is not withdrawn from %(owner)s's devices; withdrawn: %(withdrawn)s; "
    "nothing changed"
)
NOT_YOURS_TO_LET_BACK = N_(
    "only the owner of the devices (or an admin) may let back whom the owner withdrew: ask the "
    "owner; nothing changed"
)
NO_OWNER = N_("no user %(user)s: name an owner whose withdrawals are listed; nothing changed")


class DeviceError(Exception):
    """Base of device errors."""


class InvalidDeviceError(DeviceError):
    """Bad input: nothing was changed."""


class AmbiguousDeviceError(InvalidDeviceError):
    """A device reference (``ref``) naming several devices: nothing was changed."""

    def __init__(self, refusal: Refusal, ref: str) -> None:
        super().__init__(refusal)
        self.ref = ref


class UnregisteredUserError(InvalidDeviceError):
    """A user named (the device's, a speaker) nobody registered, said as every command says it
    (``not_registered``): nothing was changed."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownOwnerError(InvalidDeviceError):
    """The owner named (not a device) is no user: nothing was changed."""

    def __init__(self, owner: str) -> None:
        super().__init__(Refusal(NO_OWNER, user=said_back(owner, 63)))
        self.owner = owner


class DeviceRefusedError(DeviceError):
    """The caller may not do this."""


class DeviceNotFoundError(DeviceError):
    """No such device among the caller's."""
