"""What a briefing sent on request answers: every channel the send asked for as its rows say
it (the inbox copy and each push channel, a failed one with why), one that failed before its
row was written as the workflow answered it, and, in words, which channels took it, which did
not and why, and what to do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ambient.domain.deliver_later import retries_ended_before
from ambient.domain.notify import (
    CHANNEL_TYPES,
    INTERNAL_ERROR,
    KEY_HASH,
    Delivery,
    DeliveryStatus,
    NotifyResult,
    handed_ended,
    redact_target,
)
from ambient.history import RETRIES_ENDED, delivery_public, error_shown
from ambient.refusals import N_, Refusal
from ambient.storage import Database
from ambient.storage.models import Delivery as DeliveryRow
from ambient.storage.repositories import DeliveryRepository

TOOK = (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE)
# What to do about a channel that failed, by how it failed (once each in the words).
TRANSIENT = N_("Check that it is up and reachable, then send again.")
PERMANENT = N_("Correct it in your push config, then send again.")
INTERNAL = N_("Tell your administrator, who sees why in the deliveries.")
# A mail server's refusal of the product's own settings (its login, sender, TLS, address or
# name; a blocklist): no push config mends it, the administrator's AMBIENT_SMTP_* may.
SERVER_SIDE = N_("Tell your administrator: the mail server's settings are theirs to correct.")
NOT_FINISHED = "transient: " + N_("no try finished this send (the last ended in flight)")
# A row in flight with no give-up ahead: its outcome is not known yet.
STILL_SENDING = N_("still being sent; your deliveries show how it ends")
# The product's own words in a channel's error (a receiver's text is said as it came).
ITS_WORDS = {NOT_FINISHED.partition(": ")[2], N_("push config")}
# A message handed over whose answer never came (`activities.deliveries.HANDED_UNANSWERED`).
MAYBE_DELIVERED = "may have been delivered"
MAY_HAVE_IT = N_(
    "%(channel)s may have it: the worker sending it died before its answer; not sent again."
)
UNREAD = N_("What each channel did could not be read back: your deliveries show it.")
# Below it, a send key's rows all keep it whole (`activities.deliveries.delivery_key` cuts a
# longer request key to fit deliveries.key, 255, and hashes it): a key one longer is cut to
# this length for the longest channel, so its rows would be read as this key's.
# A row's target is cut to deliveries.target's length (`activities.deliveries.MAX_SHOWN`).
MAX_SHOWN = DeliveryRow.target.type.length
READABLE_KEY = 255 - len(f":{max(CHANNEL_TYPES, key=len)}:sha256:") - KEY_HASH


def send_key(task_id: str, created: datetime | None, date: str, request_id: str) -> str:
    """The key of a send on request (its deliveries' idempotency key, read back under it):
    keyed by one life of the briefing (its creation, which a new config's run keeps; the task
    id is every life's, and a briefing created again sends a request id used before). A request
    id with ':' (its rows' keys go on with ':': another send's could read as this one's) or one
    that would make the key too long to read back, or one like a hash, is keyed by its hash:
    the same id, the same key (a retried send sends once), and one that fits as it was keyed
    before."""
    life = f"/{created:%Y%m%dT%H%M%S%f}" if created else ""  # a memo without it: as before
    key = f"{task_id}{life}/{date}/send/"
    hashed = request_id.startswith("sha256-")  # else one could be another id's hash
    if hashed or ":" in request_id or len(key + request_id) >= READABLE_KEY:
        request_id = "sha256-" + hashlib.sha256(request_id.encode()).hexdigest()[:32]
    return key + request_id


class BriefingSent(NotifyResult):
    """A send's answer: its deliveries and, in words, what came of them."""

    said: str


async def briefing_sent(
    db: Database, user: str, key: str, result: NotifyResult, *, operator: bool
) -> BriefingSent:
    """The answer of ``user``'s send ``key`` once its update answered: the rows under its key
    (one send request's alone: `send_key`), which say a channel whose
    retries were spent (the workflow then answers no deliveries) and the inbox copy, and what
    the workflow answered of a channel with no row (its push config entry unreadable)."""
    rows: list[Any] = []
    if len(key) < READABLE_KEY:
        try:
            async with db.session() as session:
                rows = await DeliveryRepository(session).under(user, key)
        except (SQLAlchemyError, OSError):
            pass  # sent all the same: said as the workflow answered
    ended = retries_ended_before(datetime.now(UTC))
    shown = [
        _of(row, delivery_public(row, ended, operator=operator), ended)
        for row in sorted(rows, key=lambda r: r.id)
    ]
    had = {(d.channel, d.target) for d in shown}
    answered = [
        d.model_copy(
            update={
                "target": redact_target(d.channel, d.target)[:MAX_SHOWN],
                "error": error_shown(d.error, operator=operator),
            }
        )
        for d in result.deliveries
    ]
    shown += [d for d in answered if (d.channel, d.target) not in had]
    return BriefingSent(deliveries=shown, said=joined(map(str, sent_words(shown))))


def _of(row: Any, public: Any, ended: datetime) -> Delivery:
    status, error = public.status, public.error
    if status == "pending":
        # In flight after its send answered. One whose try was handing it over ends as its
        # give-up ends it: it may have been delivered. A deliver-later run's (its give-up ahead)
        # is still being sent, whatever its lease: a try whose worker died leaves it, and the
        # run's next try takes it over (docs/notifications.md, "Leases"); past its give-up it
        # failed. One with no give-up stamped may be a live lease's holder's, or one a
        # deliver-later run takes over (answered in flight, not deferred), or the send's own
        # lost try: not known yet, so never "send again" (a second copy).
        until = row.retry_until
        if handed := handed_ended(row.provider_id):
            status, error = "failed", handed
        elif until is None:
            status, error = "deferred", STILL_SENDING
        elif until >= ended:
            status = "deferred"
        else:
            status, error = "failed", NOT_FINISHED + RETRIES_ENDED
    return Delivery(
        channel=public.channel,
        target=public.target,
        status=status,
        provider_id=row.provider_id,
        error=error,
    )


def missed_all(deliveries: Sequence[Delivery]) -> bool:
    """Whether nothing reached any channel the user asked for because each failed (the inbox
    copy is the product's own; a message handed over whose answer never came may have arrived:
    no failure to send again for), or what each did could not be read back."""
    pushed = [d for d in deliveries if d.channel != "inbox"]
    failed = bool(pushed) and all(
        d.status is DeliveryStatus.FAILED and not _maybe_delivered(d) for d in pushed
    )
    return not deliveries or failed


def _maybe_delivered(delivery: Delivery) -> bool:
    return MAYBE_DELIVERED in (delivery.error or "")


def sent_words(deliveries: Sequence[Delivery]) -> list[Refusal]:
    """The send's outcome as sentences (msgids the pages translate; str() is the English)."""
    if not deliveries:
        return [Refusal(UNREAD)]
    pushed = [d for d in deliveries if d.channel != "inbox"]
    took = [d for d in pushed if d.status in TOOK]
    words: list[Refusal] = []
    if took:
        words.append(Refusal(N_("Sent to %(channels)s."), channels=_named(took)))
    elif any(map(_maybe_delivered, pushed)):
        words.append(Refusal(N_("It may have reached your push channels; none said it did.")))
    elif pushed:
        words.append(Refusal(N_("Not sent to any of your push channels.")))
    else:
        words.append(Refusal(N_("No push channel of yours takes briefings: add one.")))
    if any(d.channel == "inbox" and d.status in TOOK for d in deliveries):
        words.append(Refusal(N_("Your inbox has it.")))
    todo: list[str] = []
    for missed in (d for d in pushed if d.status not in TOOK):
        words.append(_missed(missed))
        todo.append(_to_do(missed))
    words += [Refusal(said) for said in dict.fromkeys(t for t in todo if t)]
    return words


def joined(sentences: Iterable[str]) -> str:
    """Sentences as one text: after a Chinese one's stop (。) no space."""
    text = ""
    for sentence in sentences:
        text += sentence if not text or text.endswith("。") else f" {sentence}"
    return text


def _named(deliveries: Sequence[Delivery]) -> str:
    return ", ".join(f"{d.channel} {d.target}".strip() for d in deliveries)


def _said(words: str) -> str | Refusal:
    """A part of a channel's sentence in the page's language where it is the product's own."""
    return Refusal(words) if words in ITS_WORDS else words


def _missed(missed: Delivery) -> Refusal:
    """One channel that has not taken it, in the reader's words: its error without its class
    (the what-to-do says it), the receiver's or the driver's own text as it came."""
    name = "push config" if missed.channel == "push_config" else _named([missed])
    channel, error = _said(name), missed.error or ""
    if missed.status is DeliveryStatus.DEFERRED and error == STILL_SENDING:
        return Refusal(
            N_("Still being sent to %(channel)s: your deliveries show how it ends."),
            channel=channel,
        )
    if missed.status is DeliveryStatus.DEFERRED:
        return Refusal(
            N_("Still being sent to %(channel)s: it is tried again by itself."), channel=channel
        )
    if missed.status is DeliveryStatus.SUPPRESSED:
        held = N_("Held back from %(channel)s by your quiet hours: send again after them.")
        return Refusal(held, channel=channel)
    if INTERNAL_ERROR in error:
        return Refusal(
            N_("Not sent to %(channel)s: an internal error stopped it."), channel=channel
        )
    if _maybe_delivered(missed):
        return Refusal(MAY_HAVE_IT, channel=channel)
    ended = error.endswith(RETRIES_ENDED)
    error = error.removesuffix(RETRIES_ENDED)
    why = error.partition(": ")[2] if error.startswith(("transient: ", "permanent: ")) else error
    said = _said(why)
    if ended:
        said = Refusal(N_("%(why)s; its retries ended"), why=said)
    return Refusal(N_("Not sent to %(channel)s: %(why)s."), channel=channel, why=said)


def _to_do(missed: Delivery) -> str:
    error = missed.error or ""
    if missed.status is not DeliveryStatus.FAILED:
        return ""  # tried again by itself, or held back: its sentence says what to do
    if INTERNAL_ERROR in error:
        return INTERNAL
    if error.startswith("transient:"):
        return TRANSIENT
    # A message handed over whose answer never came may have arrived: its error says so.
    if _maybe_delivered(missed):
        return ""
    # An email's push config is its address: only a recipient refused is the user's to mend.
    if missed.channel == "email" and ("recipient " not in error or "AMBIENT_" in error):
        return SERVER_SIDE
    return PERMANENT
