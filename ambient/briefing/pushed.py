"""Where a day's briefing went once pushed, as every door says it (a greeting after its window,
the briefings page, the voice's task status, the briefing's status and views): the push
channels that took it (read from the day's deliveries, the window's push and any send on
request), else the inbox; never "your channels" when none of them took it."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from ambient.briefing.models import DayPushed
from ambient.storage import Database
from ambient.storage.models import Delivery
from ambient.watches.configs import task_id_for

__all__ = ["DayPushed", "day_pushed", "days_pushed", "named_channels", "todays_whereabouts"]

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
    (``{task}/{life}/{date}/send/…``), the inbox copy left out. A channel counts as taken when
    any of them took it."""
    task = task_id_for(user)
    # Every briefing delivery of the user's is a key from "{task}/" up to "{task}0" ('/' + 1).
    keys = (Delivery.key >= f"{task}/") & (Delivery.key < f"{task}0")
    took: dict[str, dict[tuple[str, str], bool]] = {date: {} for date in dates}
    if not took:
        return {}
    async with db.session() as session:
        rows = await session.scalars(select(Delivery).where(keys).order_by(Delivery.id))
        for row in rows:
            if row.user != user or row.channel == "inbox":
                continue
            for date, day in took.items():
                if f"/{date}/push:" in row.key or f"/{date}/send/" in row.key:
                    was = day.get((row.channel, row.target), False)
                    day[(row.channel, row.target)] = was or row.status in TOOK
    return {date: _pushed(day) for date, day in took.items()}


def _pushed(took: dict[tuple[str, str], bool]) -> DayPushed:
    channels = tuple(dict.fromkeys(channel for (channel, _), ok in took.items() if ok))
    return DayPushed(took=channels, all_took=bool(took) and all(took.values()))


def named_channels(pushed: DayPushed, *, chinese: bool) -> str:
    """The channels that took it as a reader says them: "DingTalk", "WeCom and DingTalk"."""
    names = [SPOKEN_CHANNEL.get(c, (c, c))[0 if chinese else 1] for c in pushed.took]
    return _listed(names, "、", "和") if chinese else _listed(names, ", ", " and ")


def todays_whereabouts(pushed: DayPushed | None, *, chinese: bool, hhmm: str) -> str:
    """Where today's briefing is, in one spoken sentence: sent at ``hhmm`` (as spoken) to
    "your channels" when every push channel took it, to those that did by name when some did,
    in the inbox when none did; on its page alone when it was not pushed (``pushed`` None)."""
    if pushed is None:
        return (
            "今天的简报在简报页面上。" if chinese else "Today's briefing is on the briefing page."
        )
    if not pushed.took:
        if chinese:
            return "今天的简报在你的收件箱和简报页面上。"
        return "Today's briefing is in your inbox and on the briefing page."
    if chinese:
        where = "消息渠道" if pushed.all_took else named_channels(pushed, chinese=True)
        return f"今天的简报已在{hhmm}发到你的{where}，简报页面上也有。"
    where = "channels" if pushed.all_took else named_channels(pushed, chinese=False)
    return f"Today's briefing was sent to your {where} at {hhmm}; it is also on the briefing page."


def _listed(names: list[str], comma: str, last: str) -> str:
    return names[0] if len(names) == 1 else comma.join(names[:-1]) + last + names[-1]
