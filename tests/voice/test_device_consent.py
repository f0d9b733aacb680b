"""Allowing someone else's 小智 device by its MAC (POST/DELETE /xiaozhi/devices/{MAC}/allow,
the settings form): the answer is the caller's own consent, never whose device it is."""

from __future__ import annotations

from ambient.settings import Settings
from tests.support.admins import admin_headers
from tests.support.pages import signed_in
from tests.voice.support import register, voice_api


async def test_allowing_someone_elses_device_by_its_mac_never_names_its_owner(
    settings: Settings,
) -> None:
    """A MAC is no secret (a router's list, the box's label): allowing it (or withdrawing a
    consent never given) answered whose speaker it is, so a stranger learned the user name
    behind any MAC they could read. Said as an account system says a name is taken: the
    answer is the caller's own consent, the owner's to tell (API and the settings form)."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "rosalind-owner")
        stranger = await register(http, settings, "trudy-stranger")
        mac = "aa:bb:cc:dd:ee:43"
        added = await http.post("/xiaozhi/devices", json={"device_id": mac}, headers=owner)
        assert added.status_code == 201, added.text
        answers = [
            await http.post(f"/xiaozhi/devices/{mac.upper()}/allow", headers=stranger),
            await http.delete(f"/xiaozhi/devices/{mac}/allow", headers=stranger),
            await http.delete(f"/xiaozhi/devices/{mac}/allow", headers=stranger),
        ]
        token = stranger["Authorization"].removeprefix("Bearer ")
        async with signed_in(settings, token, "/app/settings") as page:
            form = await page.post("/app/xiaozhi/devices/allow", data={"device": mac})
        [listed] = (await http.get("/xiaozhi/devices", headers=owner)).json()

    assert [a.status_code for a in answers] == [200, 200, 200]
    # The caller's own consent: the device as they named it, and only themselves in it.
    assert [a.json() for a in answers] == [
        {"device_id": mac, "speakers": ["trudy-stranger"], "allowed": True},
        {"device_id": mac, "speakers": [], "allowed": False},
        {"device_id": mac, "speakers": [], "allowed": False},
    ]
    assert form.status_code in (200, 303), form.text
    assert all("rosalind" not in a.text for a in [*answers, form])
    # The owner still sees who allowed their device.
    assert (listed["user"], listed["speakers"]) == ("rosalind-owner", ["trudy-stranger"])


async def test_a_device_someone_else_registered_is_refused_with_who_can_remove_it(
    settings: Settings,
) -> None:
    """Another user's add of a registered device was told "remove it first", which only its
    owner or an admin can do: they are told so, and only an admin is told whose it is."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "rosalind-owner")
        stranger = await register(http, settings, "trudy-stranger")
        mac = "aa:bb:cc:dd:ee:44"
        added = await http.post("/xiaozhi/devices", json={"device_id": mac}, headers=owner)
        assert added.status_code == 201, added.text
        sent = {"device_id": mac.upper()}
        theirs = await http.post("/xiaozhi/devices", json=sent, headers=stranger)
        again = await http.post("/xiaozhi/devices", json=sent, headers=owner)
        admin = await http.post(
            "/xiaozhi/devices", json=sent, headers=await admin_headers(settings)
        )
    assert [r.status_code for r in (theirs, again, admin)] == [422, 422, 422]
    said = [r.text for r in (theirs, again, admin)]
    assert f"{mac} is registered to another user: only its owner or an admin" in said[0]
    assert "rosalind" not in said[0] and "remove it first" not in said[0]
    assert f"{mac} is already registered; remove it first" in said[1]
    assert f"{mac} is registered to rosalind-owner: only its owner or an admin" in said[2]
