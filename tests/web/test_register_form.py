"""The registration form: a refusal shows the form again as the person filled it in."""

from __future__ import annotations

import httpx

from ambient.deps import WorkerDeps
from ambient.storage.repositories import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.support.servers import HANG, serve
from tests.web.test_settings_form import values


async def test_a_refused_registration_keeps_the_name_and_email_typed(deps: WorkerDeps) -> None:
    settings = deps.settings.model_copy(update={"open_registration": True})
    taken = unique("reg")
    async with (
        serve(create_app(settings)) as base,
        httpx.AsyncClient(
            timeout=HANG, base_url=base, trust_env=False, headers={"origin": base}
        ) as http,
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
            assert shown == {"name": [typed["name"]], "email": [typed["email"]]}, shown
            if typed["name"] != taken:  # nobody was stored
                async with deps.db.session() as session:
                    assert await UserRepository(session).get(typed["name"]) is None
