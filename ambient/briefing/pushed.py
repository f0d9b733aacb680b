"""Where a day's briefing went once pushed, as every door says it (a greeting after its window,
the briefings page, the voice's task status, the briefing's status and views): the push
channels that took it (read from the day's deliveries, the window's push and any send on
request), else the inbox; never "your channels" when none of them took it. Its pushed_at is
the first push's time (the inbox takes a copy at each): only the channels that took that push
are said at that hour, and those that took only a later one (a send on request at 14:00 of a
day pushed at 10:00) as sent later."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select

from ambient.briefing.models import DayPushed
from ambient.storage import Database
from ambient.storage.models import Delivery
from ambient.watches.configs import task_id_for

TOOK = ("sent", "duplicate")
# A channel as a speaker says it (its target is an address or a key: never spoken).
SPOKEN_CHANNEL = {
    "email": ("邮箱", "email"),
    "wecom": ("企业微信", "WeCom"),
    "dingtalk": ("钉钉", "DingTalk"),
    "webhook": ("webhook", "webhook"),
    "apprise": ("Apprise", "Apprise"),
    "sms": ("短信", "SMS"),
}


async def day_pushed(db: Database, user: str, date: str) -> DayPushed:
    """What the push channels did with ``user``'s briefing of ``date`` (`days_pushed`)."""
    return (await days_pushed(db, user, [date]))[date]


async def days_pushed(db: Database, user: str, dates: Collection[str]) -> dict[str, DayPushed]:
    """What the push channels did with ``user``'s briefings of ``dates``, in one read: each
    day's deliveries under its push key (``{task}/{date}/push``) and its sends'
    (``{task}/{life}/{date}/send/{request}``), each key one push. A channel counts as taken
    when any push took it; the day's first push (the first whose inbox copy or any delivery
    was sent: what set pushed_at) is told apart from the later ones."""
    task = task_id_for(user)
    # Every briefing delivery of the user's is a key from "{task}/" up to "{task}0" ('/' + 1).
    keys = (Delivery.key >= f"{task}/") & (Delivery.key < f"{task}0")
    # By day, its pushes in the order their rows were written, each with the status of every
    # (channel, target) it went to (the inbox's too: the first push any row of took set
    # pushed_at, `BriefingActivities.record_briefing_push`).
    pushes: dict[str, dict[str, dict[tuple[str, str], str]]] = {date: {} for date in dates}
    if not pushes:
        return {}
    async with db.session() as session:
        rows = await session.scalars(select(Delivery).where(keys).order_by(Delivery.id))
        for row in rows:
            if row.user != user:
                continue
            for date, day in pushes.items():
                if (push := _push_of(row.key, date)) is not None:
                    day.setdefault(push, {})[(row.channel, row.target)] = row.status
    return {date: _pushed(list(day.values())) for date, day in pushes.items()}


def _push_of(key: str, date: str) -> str | None:
    """The push a delivery's ``key`` is of on ``date`` (its key up to the channel), or None:
    the window's push ``…/{date}/push:{channel}…``, a send ``…/{date}/send/{request}:…`` (a
    request id with ':' is keyed by its hash: `ambient.briefing.sent.send_key`)."""
    for marker in (f"/{date}/push:", f"/{date}/send/"):
        at = key.find(marker)
        if at >= 0:
            # Up to the ':' before the channel (the window push's is the marker's own).
            return key[: key.find(":", at + len(marker) - 1)]
    return None


def _pushed(pushes: list[dict[tuple[str, str], str]]) -> DayPushed:
    """A day's ``pushes`` (in order) as said: what any took, what its first took, what only a
    later one did."""
    channels = [{t: s in TOOK for t, s in push.items() if t[0] != "inbox"} for push in pushes]
    first = next((i for i, push in enumerate(pushes) if "sent" in push.values()), 0)
    taken, at_first = _taken(channels), _taken(channels[first : first + 1])
    first_took = _types(at_first)
    later = _types(_taken(channels[first + 1 :]))
    return DayPushed(
        took=_types(taken),
        all_took=bool(taken) and all(taken.values()),
        first_took=first_took,
        first_all_took=bool(at_first) and all(at_first.values()),
        later_took=tuple(channel for channel in later if channel not in first_took),
    )


def _taken(pushes: list[dict[tuple[str, str], bool]]) -> dict[tuple[str, str], bool]:
    """Each target any of ``pushes`` went to: whether one of them took it."""
    taken: dict[tuple[str, str], bool] = {}
    for push in pushes:
        for target, ok in push.items():
            taken[target] = taken.get(target, False) or ok
    return taken


def _types(took: dict[tuple[str, str], bool]) -> tuple[str, ...]:
    """The channel types of the targets that took it, in order, once each."""
    return tuple(dict.fromkeys(channel for (channel, _), ok in took.items() if ok))


def named_channels(channels: Sequence[str], *, chinese: bool) -> str:
    """Push ``channels`` (their types) as a reader says them: "DingTalk", "WeCom and DingTalk"."""
    names = [SPOKEN_CHANNEL.get(c, (c, c))[0 if chinese else 1] for c in channels]
    return _listed(names, "、", "和") if chinese else _listed(names, ", ", " and ")


def todays_whereabouts(pushed: DayPushed | None, *, chinese: bool, hhmm: str) -> str:
    """Where today's briefing is, in one spoken sentence: sent at ``hhmm`` (its first push, as
    spoken) to "your channels" when every push channel took that push, to those that did by
    name when some did, in the inbox when none did, and to those that took only a later push
    as sent later; on its page alone when it was not pushed (``pushed`` None)."""
    if pushed is None:
        return (
            "今天的简报在简报页面上。" if chinese else "Today's briefing is on the briefing page."
        )
    later = named_channels(pushed.later_took, chinese=chinese)
    if not pushed.first_took:
        if chinese:
            if later:
                return f"今天的简报{hhmm}放进了你的收件箱，后来发到了你的{later}，简报页面上也有。"
            return "今天的简报在你的收件箱和简报页面上。"
        if later:
            return (
                f"Today's briefing was put in your inbox at {hhmm} and later sent to your "
                f"{later}; it is also on the briefing page."
            )
        return "Today's briefing is in your inbox and on the briefing page."
    first = named_channels(pushed.first_took, chinese=chinese)
    if chinese:
        where = "消息渠道" if pushed.first_all_took else first
        also = f"，后来也发到了你的{later}" if later else ""
        return f"今天的简报已在{hhmm}发到你的{where}{also}，简报页面上也有。"
    where = "channels" if pushed.first_all_took else first
    also = f" and later to your {later}" if later else ""
    return (
        f"Today's briefing was sent to your {where} at {hhmm}{also}; "
        "it is also on the briefing page."
    )


def _listed(names: list[str], comma: str, last: str) -> str:
    if len(names) < 2:
        return "".join(names)
    return comma.join(names[:-1]) + last + names[-1]
