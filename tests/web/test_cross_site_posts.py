"""Every form of the pages refuses a cross-site post, whichever header gives it away."""

from __future__ import annotations

from fastapi.routing import APIRoute

from ambient.deps import WorkerDeps
from ambient.domain.users import UserCreate
from ambient.storage.users import UserRepository
from api.app import create_app
from api.routers import (
    app_pages,
    discussion_pages,
    ops_pages,
    pages,
    settings_pages,
    signin_pages,
)
from tests.conftest import unique
from tests.support.servers import http_client, serve

FORM_POSTS = sorted(
    route.path
    for router in (
        pages.router,
        signin_pages.router,
        app_pages.router,
        settings_pages.router,
        ops_pages.router,
        discussion_pages.router,
    )
    for route in router.routes
    if isinstance(route, APIRoute) and "POST" in route.methods
)


def test_the_state_changing_forms_are_all_checked() -> None:
    for path in (
        "/app/settings",
        "/app/tasks",
        "/app/discussions/post",
        "/app/remediation/action",
        "/app/briefings/action",
    ):
        assert path in FORM_POSTS


async def test_signed_in_posts_without_our_origin_are_refused_on_every_form(
    deps: WorkerDeps,
) -> None:
    name = unique("csrf")
    async with deps.db.session() as session:
        _, token = await UserRepository(session).create(UserCreate(name=name))
        await session.commit()
    async with serve(create_app(deps.settings)) as base:
        foreign = [
            {"origin": "https://evil.example"},
            {"origin": "null"},
            {"referer": "https://evil.example/page"},
            {"referer": f"https://evil.example/?back={base}"},
            {},  # neither header: no page of ours sent it
        ]
        async with http_client(base, cookies={"ambient_token": token}) as http:
            for path in FORM_POSTS:
                for headers in foreign:
                    response = await http.post(
                        path, data={"email": "evil@example.com"}, headers=headers
                    )
                    assert response.status_code == 403, (path, headers, response.text)
            # Nothing changed behind the refusals.
            async with deps.db.session() as session:
                user = await UserRepository(session).get(name)
            assert user is not None and user.email is None
            # Our own page's Referer (a browser that sends no Origin) is accepted.
            saved = await http.post(
                "/app/settings",
                data={"email": "me@example.com"},
                headers={"referer": f"{base}/app/settings"},
            )
            assert saved.status_code == 303 and "Settings%20saved" in saved.headers["location"]
            async with deps.db.session() as session:
                user = await UserRepository(session).get(name)
            assert user is not None and user.email == "me@example.com"
