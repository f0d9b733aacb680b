"""describe_dashboard_image: the image and question reach an OpenAI-compatible stand-in."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest_asyncio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ambient.deps import WorkerDeps
from ambient.wiring import AppState
from tests.standins.llm_api import API_KEY, Content, Failure, LLMApi, Raw
from tests.support.servers import serve
from tests.support.tencent import ops_state
from tests.tencent.test_cloud_tools import call, client

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
PNG_BYTES = base64.b64decode(PNG.partition(",")[2] + "==")


def dashboards(internal: list[str]) -> Starlette:
    """A dashboard host on loopback (allowed, as a public one would be), and what it serves."""

    async def image(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "away":  # a public page sending the fetch inward
            return RedirectResponse("http://127.0.0.2:9/latest/meta-data/", 302)
        if kind == "page":
            return Response("<html>login</html>", media_type="text/html")
        if kind == "lie":  # a sign-in page labelled as the picture
            return Response("<html>login</html>", media_type="image/png")
        if kind == "busy":
            return Response("busy", status_code=503)
        internal.append(request.url.path)  # the one the model is shown, fetched by us
        # A server that does not say what it sends: the bytes say it is a PNG.
        return Response(PNG_BYTES, media_type="image/png" if kind == "cpu" else None)

    return Starlette(routes=[Route("/{kind}.png", image)])


@pytest_asyncio.fixture
async def vision(deps: WorkerDeps) -> AsyncIterator[tuple[LLMApi, AppState]]:
    llm = LLMApi()
    async with serve(llm.app()) as base:
        settings = deps.settings.model_copy(
            update={
                "openai_api_key": SecretStr(API_KEY),
                "openai_base_url": f"{base}/v1",
                "llm_model": "vision-standin",
                # The image host here is loopback: allowed explicitly, as an operator would.
                "fetch_allow_cidrs": ["127.0.0.1/32"],
            }
        )
        yield llm, ops_state(deps, None, settings)


async def test_ci01_the_image_and_question_go_to_the_vision_model(
    vision: tuple[LLMApi, AppState],
) -> None:
    llm, state = vision
    llm.script(
        Content("CPU on ins-1 spikes to 95% at 14:00."),
        Content("Error rate is flat."),
        Content("Memory is steady."),
    )
    fetched: list[str] = []
    async with serve(dashboards(fetched)) as host, client(state, "viewer") as c:
        failed, by_url = await call(
            c,
            "describe_dashboard_image",
            image_url=f"{host}/cpu.png",
            question="Which instance is hot?",
        )
        assert not failed, by_url
        _, by_upload = await call(c, "describe_dashboard_image", image_url=PNG)
        _, unsaid = await call(c, "describe_dashboard_image", image_url=f"{host}/plain.png")
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert by_url == {"answer": "CPU on ins-1 spikes to 95% at 14:00.", "model": "vision-standin"}
    assert by_upload["answer"] == "Error rate is flat."
    assert unsaid["answer"] == "Memory is steady."
    first = llm.requests[0]
    assert first["model"] == "vision-standin"
    user = next(m for m in first["messages"] if m["role"] == "user")
    # The model is shown the image itself, fetched here: never a URL it would fetch.
    data = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()
    assert user["content"] == [
        {"type": "text", "text": "Which instance is hot?"},
        {"type": "image_url", "image_url": {"url": data}},
    ]
    third = next(m for m in llm.requests[2]["messages"] if m["role"] == "user")
    assert third["content"][1]["image_url"]["url"] == data
    assert fetched == ["/cpu.png", "/plain.png"]
    hints = tools["describe_dashboard_image"].annotations
    assert hints is not None and hints.read_only_hint is True
    assert hints.destructive_hint is False


async def test_ci02_refused_destinations_bad_uploads_and_offline_mode_are_explained(
    vision: tuple[LLMApi, AppState],
) -> None:
    llm, state = vision
    offline = AppState(
        **{
            **state.__dict__,
            "settings": state.settings.model_copy(update={"openai_api_key": None}),
        }
    )
    llm.script(Failure(400, "this model does not accept images"))
    async with client(state, "viewer") as c:
        internal, internal_message = await call(
            c, "describe_dashboard_image", image_url="http://10.0.0.5/grafana.png"
        )
        scheme, scheme_message = await call(
            c, "describe_dashboard_image", image_url="file:///etc/passwd"
        )
        upload, upload_message = await call(
            c, "describe_dashboard_image", image_url="data:text/html;base64,PGI+"
        )
        refused, refused_message = await call(c, "describe_dashboard_image", image_url=PNG)
    async with client(offline, "viewer") as c:
        no_model, no_model_message = await call(c, "describe_dashboard_image", image_url=PNG)
    assert (
        internal and "image_url" in internal_message and "refused destination" in internal_message
    )
    assert scheme and "http(s) URL" in scheme_message
    assert upload and "data:image/" in upload_message
    assert refused and "does not accept images" in refused_message
    assert no_model and "needs a vision model" in no_model_message
    assert len(llm.requests) == 1  # only the one the model refused reached it


async def test_ci03_an_answer_without_a_completion_is_said_as_no_answer(
    vision: tuple[LLMApi, AppState],
) -> None:
    llm, state = vision
    # A content filter's empty choices, and a gateway's 200 that is no completion at all.
    empty = '{"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": []}'
    llm.script(Raw(empty), Raw('{"error": "upstream busy"}'))
    async with client(state, "viewer") as c:
        filtered, filtered_message = await call(c, "describe_dashboard_image", image_url=PNG)
        gateway, gateway_message = await call(c, "describe_dashboard_image", image_url=PNG)
    assert filtered and "the vision model gave no answer" in filtered_message
    assert gateway and "the vision model gave no answer" in gateway_message
    assert "upstream busy" in gateway_message


async def test_ci04_an_image_url_redirected_inward_or_no_image_reaches_no_model(
    vision: tuple[LLMApi, AppState],
) -> None:
    # The provider had been handed the URL, checked at its first hop alone: it followed a
    # public page's redirect to the metadata service and described what it found there.
    llm, state = vision
    fetched: list[str] = []
    async with serve(dashboards(fetched)) as host, client(state, "viewer") as c:
        away, away_message = await call(c, "describe_dashboard_image", image_url=f"{host}/away.png")
        page, page_message = await call(c, "describe_dashboard_image", image_url=f"{host}/page.png")
        lie, lie_message = await call(c, "describe_dashboard_image", image_url=f"{host}/lie.png")
        busy, busy_message = await call(c, "describe_dashboard_image", image_url=f"{host}/busy.png")
        typo, typo_message = await call(
            c, "describe_dashboard_image", image_url="http://no-such-dashboard.invalid/a.png"
        )
    assert away and "image_url" in away_message and "refused destination" in away_message
    assert "127.0.0.2" in away_message
    assert page and "text/html, whose bytes are no PNG, JPEG, GIF or WebP image" in page_message
    # Told by its bytes, not its label; a host busy for now is "for now", not a wrong URL.
    assert lie and "image/png, whose bytes are no PNG, JPEG, GIF or WebP image" in lie_message
    assert busy and "cannot fetch the image for now" in busy_message and "503" in busy_message
    # A name that does not resolve is the URL's to mend, not "for now".
    assert typo and "image_url" in typo_message and "for now" not in typo_message, typo_message
    assert llm.requests == [] and fetched == []
