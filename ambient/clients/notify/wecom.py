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


def split_utf8(text: str, limit: int) -> list[str]:
    """Chunks of at most ``limit`` UTF-8 bytes, cut at line ends where possible."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # one huge line: cut by characters
            cut = line
            while len(cut.encode()) > limit:
                cut = cut[: max(1, len(cut) * limit // len(cut.encode()) - 1)]
            chunks += [current, cut] if current else [cut]
            current, line = "", line[len(cut) :]
        if len((current + line).encode()) > limit:
            chunks.append(current)
            current = ""
        current += line
    return [*chunks, current] if current else chunks


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
        parts = split_utf8(text, MARKDOWN_LIMIT - 32)  # room for the "(2/3)" part marker
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
