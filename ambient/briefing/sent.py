"""What a briefing sent on request answers: this send's deliveries as their rows say them
(the inbox copy and each push channel, a failed one with why) and, in words, which channels
took it, which did not and why, and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ambient.domain.notify import (
    CHANNEL_TYPES,
    INTERNAL_ERROR,
    Delivery,
    DeliveryStatus,
    NotifyResult,
)
from ambient.refusals import N_, Refusal
from ambient.storage import Database
from ambient.storage.repositories import DeliveryRepository

TOOK = (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE)
# What to do about a channel that did not take it, by how it failed (once each in the words).
TRANSIENT = N_("Check that it is up and reachable, then send again.")
PERMANENT = N_("Correct it in your push config, then send again.")
DEFERRED = N_("Its receiver asked to wait: it is tried again by itself.")
QUIET = N_("Your quiet hours held it back: send again after them.")
INTERNAL = N_("Tell your administrator, who sees why in the deliveries.")
NOT_FINISHED = "transient: no try finished this send (the last ended in flight)"
HIDDEN = "its text is an administrator's"  # a driver's text, its SQL or host
UNREAD = N_("What each channel did could not be read back: your deliveries show it.")
# The longest send key whose rows all keep it whole (`activities.deliveries.delivery_key` cuts
# a longer one to fit deliveries.key, 255, and hashes it: another send's rows may share the cut).
READABLE_KEY = 255 - len(f":{max(CHANNEL_TYPES, key=len)}:sha256:") - 64


class BriefingSent(NotifyResult):
    """A send's answer: its deliveries and, in words, what came of them."""

    said: str


async def briefing_sent(
    db: Database, user: str, key: str, result: NotifyResult, *, operator: bool
) -> BriefingSent:
    """The answer of ``user``'s send ``key`` once its update answered: the rows under its key
    (one send request's alone: its request id is in it), which say a channel whose retries were
    spent (the workflow then answers no deliveries) and the inbox copy; else, the database away
    or the key too long to read its rows back, what the workflow answered."""
    rows: list[Any] = []
    if len(key) <= READABLE_KEY:
        try:
            async with db.session() as session:
                rows = await DeliveryRepository(session).under(user, key)
        except (SQLAlchemyError, OSError):
            pass  # sent all the same: said as the workflow answered
    shown = [delivery_of(row, operator=operator) for row in sorted(rows, key=lambda r: r.id)]
    deliveries = shown or result.deliveries
    return BriefingSent(deliveries=deliveries, said=" ".join(map(str, sent_words(deliveries))))


def delivery_of(row: Any, *, operator: bool) -> Delivery:
    """A delivery row of the send as its answer shows it; a failure the product made (a bug,
    the database) is an admin's text, as the status says it."""
    status, error = row.status, row.error
    if status not in DeliveryStatus.__members__.values():
        # Pending after its send answered: its give-up failed too (the database away), and
        # it reads as that give-up would have written it (`activities.deliveries.GIVEN_UP`).
        status, error = DeliveryStatus.FAILED, NOT_FINISHED
    if error and INTERNAL_ERROR in error and not operator:
        error = error.partition(INTERNAL_ERROR)[0] + INTERNAL_ERROR + HIDDEN
    return Delivery(
        channel=row.channel,
        target=row.target,
        status=status,
        provider_id=row.provider_id,
        error=error,
    )


def none_took(deliveries: Sequence[Delivery]) -> bool:
    """Whether the user has push channels for it and none of them took it (the inbox copy is
    the product's own, not a channel they asked for)."""
    pushed = [d for d in deliveries if d.channel != "inbox"]
    return bool(pushed) and not any(d.status in TOOK for d in pushed)


def sent_words(deliveries: Sequence[Delivery]) -> list[Refusal]:
    """The send's outcome as sentences (msgids the pages translate; str() is the English)."""
    if not deliveries:
        return [Refusal(UNREAD)]
    pushed = [d for d in deliveries if d.channel != "inbox"]
    took = [d for d in pushed if d.status in TOOK]
    words: list[Refusal] = []
    if took:
        words.append(Refusal(N_("Sent to %(channels)s."), channels=_named(took)))
    elif pushed:
        words.append(Refusal(N_("Not sent to any of your push channels.")))
    else:
        words.append(Refusal(N_("No push channel of yours takes briefings: add one.")))
    if any(d.channel == "inbox" and d.status in TOOK for d in deliveries):
        words.append(Refusal(N_("Your inbox has it.")))
    todo: list[str] = []
    for missed in (d for d in pushed if d.status not in TOOK):
        why = missed.error or missed.status.value
        words.append(
            Refusal(N_("Not sent to %(channel)s: %(why)s."), channel=_named([missed]), why=why)
        )
        todo.append(_to_do(missed))
    words += [Refusal(said) for said in dict.fromkeys(t for t in todo if t)]
    return words


def _named(deliveries: Sequence[Delivery]) -> str:
    return ", ".join(f"{d.channel} {d.target}".strip() for d in deliveries)


def _to_do(missed: Delivery) -> str:
    error = missed.error or ""
    if INTERNAL_ERROR in error:
        return INTERNAL
    if missed.status is DeliveryStatus.DEFERRED:
        return DEFERRED
    if missed.status is DeliveryStatus.SUPPRESSED:
        return QUIET
    if error.startswith("transient:"):
        return TRANSIENT
    # A message handed over whose answer never came may have arrived: its error says so.
    return "" if "may have been delivered" in error else PERMANENT
