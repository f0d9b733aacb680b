"""An Apprise service that takes HTML (mail APIs, WeCom's app, json://?format=html, ...) gets
the markdown body rendered by us: markdown-it, linear in the text, with our link rules. Apprise
rendered it with Python-Markdown, in time quadratic in runs of unmatched ``[`` or ``<``, on
bodies that carry untrusted text (page excerpts, alert messages), and passed raw HTML and any
link target through."""

import asyncio
import threading
from types import FrameType

from ambient.clients.guard import DestinationGuard
from ambient.clients.notify.apprise import AppriseChannel
from ambient.clients.notify.secrets import SecretResolver
from ambient.domain.notify import Message
from tests.notify.standins import PushEndpoints

LOOPBACK = DestinationGuard(["127.0.0.1/32"])
SECRETS = SecretResolver({})


async def _send(base: str, body: str, options: str = "format=html", title: str = "Hit") -> None:
    url = base.replace("http://", "json://") + "/apprise?" + options
    message = Message(title=title, body=body)
    await AppriseChannel(SECRETS, LOOPBACK).send("alice", message, url, idempotency_key="k")


def _steps_of_a_send(base: str, body: str) -> int:
    """The Python lines a send runs in its threads (where Apprise and the render run): a
    count that does not depend on the machine's speed. The send has an event loop of its own,
    whose executor starts its threads with the tracer."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> object:
        nonlocal count
        count += 1
        return tracer

    async def send() -> None:
        threading.settrace(tracer)
        try:
            await _send(base, body)
        finally:
            threading.settrace(None)

    asyncio.run(send())
    return count


async def test_an_html_service_gets_a_body_rendered_in_steps_in_proportion_to_it(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    small, double, quadruple = [
        await asyncio.to_thread(_steps_of_a_send, base, "[" * size) for size in (300, 600, 1_200)
    ]
    # What a send costs besides the body cancels out: linear, the step from 600 to 1,200 is
    # twice the one from 300 to 600; Python-Markdown's was four times.
    assert 0 < double - small and quadruple - double < 2.5 * (double - small), (small, double)
    assert [body["message"] for _, body in state.received] == [
        f"<p>{'[' * size}</p>" for size in (300, 600, 1_200)
    ]


async def test_an_html_service_gets_our_link_rules_escaped_html_and_its_line_breaks(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    body = (
        "**Disk 91%** on node-3\n/var is full\n\n"
        "[open](https://ops.example/a) [bad](javascript:alert(1)) <img src=x onerror=alert(1)>"
    )
    await _send(base, body, title="Disk & <b>")
    ((_, sent),) = state.received
    assert sent["message"] == (
        "<p><strong>Disk 91%</strong> on node-3<br />\n/var is full</p>\n"
        '<p><a href="https://ops.example/a">open</a> <a>bad</a> '
        "&lt;img src=x onerror=alert(1)&gt;</p>"
    )
    assert sent["title"] == "Disk & <b>"  # a title field of its own is sent as it is


async def test_markdown_and_text_services_still_get_markdown_and_plain_text(
    endpoints: tuple[PushEndpoints, str],
) -> None:
    state, base = endpoints
    body = r"**Disk** at 91\_x [a](https://ops.example/a)"
    await _send(base, body, options="format=markdown")
    await _send(base, body, options="format=text")
    assert [sent["message"] for _, sent in state.received] == [
        body,
        "**Disk** at 91_x [a](https://ops.example/a)",
    ]
