"""WeCom (企业微信) group robot: markdown, mentions, long content split under the limit.

Target: the robot key, its webhook URL or `secret:NAME`, optionally
`?mentioned=userid,@all&mobiles=138...` (see ambient.clients.notify.robots).
"""

from __future__ import annotations

from dataclasses import dataclass

from ambient.clients.notify.base import Posts
from ambient.clients.notify.errors import (
    DeferredNotifyError,
    PermanentNotifyError,
    TransientNotifyError,
)
from ambient.clients.notify.robots import (
    UPDATE_TARGET,
    WECOM_LIMITED,
    RobotChannel,
    heading,
    held_in_secret,
    listed,
)
from ambient.domain.notify import ROBOT_KEYS, Message

MARKDOWN_LIMIT = 4096  # bytes of UTF-8, the robot's limit for markdown content
TEXT_LIMIT = 2048  # bytes of UTF-8, for text content


def split_utf8(text: str, limit: int, *, heading: bool = False) -> list[str]:
    """Chunks of at most ``limit`` UTF-8 bytes that together are ``text``, cut at line ends
    where possible. A line longer than a chunk fills the room left in the chunk it starts in
    and goes on in the next, cut after a space where it has one, else between two characters
    (never inside one). ``heading``: the first line is never a chunk alone (a post that was
    its heading alone, the message in the posts after it)."""
    chunks: list[str] = []
    current = ""
    lines = text.splitlines(keepends=True)
    head = lines[0] if heading and lines else ""
    for line in lines:
        while len((current + line).encode()) > limit:
            # ``current`` is the heading alone (with blank lines after it)
            alone = bool(head) and not chunks and not current.removeprefix(head).strip()
            if current and len(line.encode()) <= limit and not alone:
                chunks.append(current)  # the line goes whole in the next chunk
                current = ""
                continue
            start = _start_within(line, limit - len(current.encode()))
            if not start:  # no room for a character: the line starts the next chunk
                chunks.append(current)
                current = ""
                continue
            chunks.append(current + start)
            current, line = "", line[len(start) :]
        current += line
    return [*chunks, current] if current else chunks


def _start_within(line: str, room: int) -> str:
    """The longest start of ``line`` within ``room`` UTF-8 bytes, ending after a space when one
    keeps at least half of it (a word is not cut in two), else between two characters."""
    start = line.encode()[: max(room, 0)].decode(errors="ignore")  # a cut character dropped
    if len(start) == len(line) or line[len(start)].isspace():
        return start
    after_space = max((i + 1 for i, c in enumerate(start) if c.isspace()), default=0)
    return start[:after_space] if 2 * after_space >= len(start) else start


@dataclass
class WeComChannel(RobotChannel):
    name = "wecom"
    path = "/cgi-bin/webhook/send"
    key_param = ROBOT_KEYS[name]
    rate_limited = WECOM_LIMITED

    async def send(
        self,
        user: str,
        message: Message,
        target: str,
        *,
        posts: Posts | None = None,
        **unused: object,
    ) -> str | None:
        key, options = self.address(target)
        if not key:
            raise PermanentNotifyError("wecom target needs the robot key (or secret:NAME)")
        mentioned, mobiles = listed(options, "mentioned"), listed(options, "mobiles")
        url, update = self.endpoint(key), held_in_secret(target) or UPDATE_TARGET
        text = f"{heading(message.title)}\n{message.body}"
        if message.link_to_add:
            text += f"\n\n[详情 / details]({message.link_to_add})"
        # Room for the "(2/3)" part marker; no post is the heading alone.
        parts = split_utf8(text, MARKDOWN_LIMIT - 32, heading=True)
        if len(parts) > 1:
            parts = [f"{part}\n({index}/{len(parts)})" for index, part in enumerate(parts, 1)]
        payloads: list[dict[str, object]] = [
            {"msgtype": "markdown", "markdown": {"content": part}} for part in parts
        ]
        if mentioned or mobiles:
            # Markdown messages cannot @ people: a short text message carries the mentions.
            mentions = {"mentioned_list": mentioned, "mentioned_mobile_list": mobiles}
            title = (split_utf8(message.title, TEXT_LIMIT) or [""])[0]
            payloads.append({"msgtype": "text", "text": {"content": title, **mentions}})
        # A retry goes on after the posts an earlier try sent, or handed over (a worker killed
        # meanwhile): the group sees each once.
        if posts is not None:
            posts.several = len(payloads) > 1
        for index in range(posts.done if posts else 0, len(payloads)):
            try:
                await self.post(url, payloads[index], robot=key, update=update, posts=posts)
            except (PermanentNotifyError, TransientNotifyError) as exc:
                if index == 0:
                    raise
                raise partly_posted(exc, index, len(parts)) from exc
            if posts is not None and len(payloads) > 1:
                await posts.sent()
        return None


def partly_posted(exc: Exception, index: int, parts: int) -> Exception:
    """``exc`` (post ``index`` failed) saying what the group already has: a delivery failed
    at its second part is not a message that never arrived."""
    if index >= parts:
        said = f"the mentions not posted (the group has the whole message): {exc}"
    else:
        has = "part 1" if index == 1 else f"parts 1-{index}"
        said = f"part {index + 1} of {parts} not posted (the group has {has} of {parts}): {exc}"
    if isinstance(exc, DeferredNotifyError):
        return DeferredNotifyError(said, retry_after=exc.retry_after)
    return type(exc)(said)
