"""The registration form: a refusal shows the form again as the person filled it in."""

from __future__ import annotations

import asyncio
import contextlib
import re

from playwright.async_api import Browser, Route, expect
from playwright.async_api import Error as PlaywrightError

from ambient.deps import WorkerDeps
from ambient.storage.users import UserRepository
from api.app import create_app
from api.routers.signin_pages import SAME_FORM_WITHIN
from tests.conftest import unique
from tests.support.servers import HANG, http_client, serve
from tests.web.test_pages_browser import phone_page
from tests.web.test_settings_form import values


async def test_a_refused_registration_keeps_the_name_and_email_typed(deps: WorkerDeps) -> None:
    settings = deps.settings.model_copy(update={"open_registration": True})
    taken = unique("reg")
    async with (
        serve(create_app(settings)) as base,
        http_client(base, headers={"origin": base}) as http,
    ):
        made = await http.post("/register", data={"name": taken})
        assert made.status_code == 200
        http.cookies.clear()
        for typed in (
            {"name": taken, "email": "other@example.com"},  # the name is taken
            {"name": unique("reg"), "email": "mei@company"},  # no valid email
            {"name": "Mei <b>Li</b>", "email": "mei@example.com"},  # no valid name
        ):
            refused = await http.post("/register", data=typed)
            assert refused.status_code == 422, (typed, refused.status_code)
            assert "<b>Li</b>" not in refused.text
            shown = values(refused.text, "register")
            # The form's own name comes back too (none was sent here).
            wanted = {"name": [typed["name"]], "email": [typed["email"]], "form": [""]}
            assert shown == wanted, shown
            if typed["name"] != taken:  # nobody was stored
                async with deps.db.session() as session:
                    assert await UserRepository(session).get(typed["name"]) is None


async def test_a_double_clicked_registration_shows_the_token_its_first_submit_made(
    browser: Browser, deps: WorkerDeps
) -> None:
    """A double click sent the form twice: the first submit made the user and its one-time
    token, the browser dropped that page for the second's, which said the name was taken.
    The token was lost. The second submit of the same form now shows the same token again."""
    settings = deps.settings.model_copy(update={"open_registration": True})
    name = unique("reg")
    first: list[Route] = []
    made = asyncio.Event()  # the first submit reached the server and was answered there

    async def double_click(route: Route) -> None:
        if route.request.method != "POST" or first:  # the page, or the second submit
            await route.continue_()
            return
        first.append(route)
        await route.fetch()  # its answer never reaches the page: the second click drops it
        made.set()

    async with serve(create_app(settings)) as base, phone_page(browser) as page:
        await page.route(f"{base}/register", double_click)
        await page.goto(f"{base}/register")
        await page.get_by_label("User name").fill(name)
        box = await page.get_by_role("button", name="Register").bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + 4, box["y"] + 4)
        await asyncio.wait_for(made.wait(), HANG)
        # The second click, while the first's page is on its way (a locator's click would wait
        # for that navigation to finish, which never comes).
        await page.mouse.click(box["x"] + 4, box["y"] + 4)
        await expect(page.locator("#token")).to_have_text(re.compile(r"^amb_\S+$"))
        token = await page.locator("#token").inner_text()
        await page.get_by_role("link", name="Continue").click()  # signed in by that token
        await expect(page.locator("header")).to_contain_text(name)
        with contextlib.suppress(PlaywrightError):
            await first[0].abort()
    async with deps.db.session() as session:
        registered = await UserRepository(session).by_token(token)
    assert registered is not None and registered.name == name


async def test_a_registration_form_sent_again_later_or_with_another_name_shows_no_token(
    deps: WorkerDeps,
) -> None:
    """The same form sent again shows its token only with the same name, within a minute of the
    first submit: resent later (Back after signing out on a shared machine) or with another
    name, it shows only that the name is taken."""
    settings = deps.settings.model_copy(update={"open_registration": True})
    form = {"name": unique("reg"), "form": "a-form-kept-in-the-history"}
    async with (
        serve(create_app(settings)) as base,
        http_client(base, headers={"origin": base}) as http,
    ):
        first = await http.post("/register", data=form)
        assert first.status_code == 200
        token = re.search(r"amb_[0-9a-f]+", first.text)
        assert token is not None
        http.cookies.clear()
        again = await http.post("/register", data=form)  # a double click: the same token
        assert again.status_code == 200 and token.group() in again.text
        other = unique("reg")  # someone else's name, taken
        assert (await http.post("/register", data={"name": other})).status_code == 200
        http.cookies.clear()
        # The same form with that name (as first refused, then resent): not its user's token.
        renamed = await http.post("/register", data={**form, "name": other})
        assert renamed.status_code == 422
        assert token.group() not in renamed.text and "is taken" in renamed.text
        # The same form with a name nobody has: a new user, with a token of its own.
        fresh = await http.post("/register", data={**form, "name": unique("reg")})
        assert fresh.status_code == 200 and token.group() not in fresh.text
        http.cookies.clear()
        async with deps.db.session() as session:
            user = await UserRepository(session).get(form["name"])
            assert user is not None
            user.created_at -= SAME_FORM_WITHIN
            await session.commit()
        http.cookies.clear()
        later = await http.post("/register", data=form)
        assert later.status_code == 422
        assert token.group() not in later.text and "is taken" in later.text
