"""An id a person removes things by names one life of a thing: once removed, its number names no
later row (SQLite gives a new row the number of the newest row removed unless the table says
AUTOINCREMENT; PostgreSQL's sequences never give one twice). A stale page, a list read before,
or a retried remove then answers 404 instead of removing whatever was registered since."""

from __future__ import annotations

from ambient.domain.users import Role, UserCreate
from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.users import UserRepository
from api.app import create_app
from tests.conftest import unique
from tests.foundation.test_event_cursor import _api
from tests.foundation.test_postgres import postgres_url  # noqa: F401  (fixture)
from tests.support.servers import free_port, http_client, serve


async def _user(url: str, name: str, role: Role = Role.MEMBER) -> dict[str, str]:
    db = Database(url)
    try:
        async with db.session() as session:
            _, token = await UserRepository(session).create(UserCreate(name=name, role=role))
            await session.commit()
    finally:
        await db.close()
    return {"Authorization": f"Bearer {token}"}


def _endpoint(user: str) -> dict[str, str]:
    # Nothing listens there: the API process's dialer keeps retrying, on loopback only.
    return {"user": user, "url": f"ws://127.0.0.1:{free_port()}/mcp/?token={unique('jwt')}"}


def _device(user: str) -> dict[str, str]:
    return {"user": user, "device_id": unique("mac")}


async def test_a_removed_endpoints_or_devices_id_never_names_one_registered_since(
    settings: Settings, database_url: str
) -> None:
    settings, _ = await _api(settings, database_url)
    settings = settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    ann, bob = unique("ann"), unique("bob")
    admin = await _user(database_url, unique("admin"), Role.ADMIN)
    as_ann, as_bob = await _user(database_url, ann), await _user(database_url, bob)
    async with (
        serve(create_app(settings)) as base,
        http_client(base) as http,
    ):
        for path, body in (("/xiaozhi/endpoints", _endpoint), ("/xiaozhi/devices", _device)):
            added = await http.post(path, json=body(ann), headers=as_ann)
            assert added.status_code == 201, added.text
            anns = added.json()["id"]
            # The admin's page lists it; ann removes it herself meanwhile, bob adds his.
            assert anns in [row["id"] for row in (await http.get(path, headers=admin)).json()]
            assert (await http.delete(f"{path}/{anns}", headers=as_ann)).status_code == 200
            added = await http.post(path, json=body(bob), headers=as_bob)
            assert added.status_code == 201, added.text
            bobs = added.json()["id"]
            assert bobs != anns, path
            # The admin removes what the page showed: ann's, gone already; bob's stays.
            stale = await http.delete(f"{path}/{anns}", headers=admin)
            assert stale.status_code == 404, (path, stale.text)
            listed = (await http.get(path, headers=as_bob)).json()
            assert [row["id"] for row in listed] == [bobs], path
