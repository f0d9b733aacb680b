"""Where a day's briefing went once pushed, as a greeting after its window says it: the push
channels that took it (read from the day's deliveries, the window's push and any send on
request), else the inbox; never "your channels" when none of them took it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

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


@dataclass(frozen=True)
class DayPushed:
    """The push channels (by type, in order) that took a day's briefing, and whether every
    push channel it went to took it."""

    took: tuple[str, ...]
    all_took: bool


async def day_pushed(db: Database, user: str, date: str) -> DayPushed:
    """What the push channels did with ``user``'s briefing of ``date``: its deliveries under the
    day's push key (``{task}/{date}/push``) and its sends' (``{task}/{life}/{date}/send/…``),
    the inbox copy left out. A channel counts as taken when any of them took it."""
    task = task_id_for(user)
    # Every briefing delivery of the user's is a key from "{task}/" up to "{task}0" ('/' + 1).
    keys = (Delivery.key >= f"{task}/") & (Delivery.key < f"{task}0")
    async with db.session() as session:
        rows = await session.scalars(select(Delivery).where(keys).order_by(Delivery.id))
        ours = [
            row
            for row in rows
            if row.user == user
            and row.channel != "inbox"
            and (f"/{date}/push:" in row.key or f"/{date}/send/" in row.key)
        ]
    took: dict[tuple[str, str], bool] = {}
    for row in ours:
        took[(row.channel, row.target)] = took.get((row.channel, row.target), False) or (
            row.status in TOOK
        )
    channels = tuple(dict.fromkeys(channel for (channel, _), ok in took.items() if ok))
    return DayPushed(took=channels, all_took=bool(took) and all(took.values()))


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
    names = [SPOKEN_CHANNEL.get(c, (c, c)) for c in pushed.took]
    if chinese:
        where = "消息渠道" if pushed.all_took else _listed([zh for zh, _ in names], "、", "和")
        return f"今天的简报已在{hhmm}发到你的{where}，简报页面上也有。"
    where = "channels" if pushed.all_took else _listed([en for _, en in names], ", ", " and ")
    return f"Today's briefing was sent to your {where} at {hhmm}; it is also on the briefing page."


def _listed(names: list[str], comma: str, last: str) -> str:
    return names[0] if len(names) == 1 else comma.join(names[:-1]) + last + names[-1]
