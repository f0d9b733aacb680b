"""An owner's withdrawals outlive their devices: let back naming the owner, no device."""

from __future__ import annotations

import html
import json
import re

from typer.testing import CliRunner

from ambient.settings import Settings
from tests.support.admins import admin_headers
from tests.support.pages import signed_in
from tests.voice.support import register, voice_api

MAC, LATER = "aa:bb:cc:dd:ee:6a", "aa:bb:cc:dd:ee:6b"


async def test_an_owner_with_no_device_left_lets_a_withdrawn_member_back(
    settings: Settings,
) -> None:
    """Let back named a device of the owner's: one who had removed every device kept the
    withdrawal for good, and a device registered naming that member was refused at speakers
    with advice ("naming any device of the owner's") nobody could follow. The withdrawal is
    named by its owner now; who may lift it is checked as before, and it is audited."""
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "wd1-owner")
        lin = await register(http, settings, "wd1-lin")
        await register(http, settings, "wd1-mei")
        admin = await admin_headers(settings)
        await http.post("/xiaozhi/devices", json={"device_id": MAC}, headers=owner)
        for who in (lin, owner):  # mei allows nothing: her name is never withdrawn
            await http.post(f"/xiaozhi/devices/{MAC}/allow", headers=who)
        await http.delete(f"/xiaozhi/devices/{MAC}/speakers/wd1-lin", headers=owner)
        assert (await http.delete(f"/xiaozhi/devices/{MAC}", headers=owner)).is_success

        listed = await http.get("/xiaozhi/withdrawn", headers=owner)
        assert listed.json() == [{"user": "wd1-owner", "withdrawn": ["wd1-lin"]}], listed.text
        assert (await http.get("/xiaozhi/withdrawn", headers=lin)).json() == []
        # The member may not lift it, nor name another owner's.
        self_back = await http.delete("/xiaozhi/withdrawn/wd1-lin?user=wd1-owner", headers=lin)
        assert self_back.status_code == 403, self_back.text
        typo = await http.delete("/xiaozhi/withdrawn/wd1-mei", headers=owner)
        assert typo.status_code == 422, typo.text
        [error] = typo.json()["detail"]
        assert (error["loc"], error["msg"]) == (
            ["path", "name"],
            "'wd1-mei' is not withdrawn from wd1-owner's devices; withdrawn: wd1-lin; nothing"
            " changed",
        )
        back = await http.delete("/xiaozhi/withdrawn/wd1-lin", headers=owner)
        assert (back.status_code, back.json()) == (
            200,
            {"user": "wd1-owner", "withdrawn": []},
        ), back.text
        # Now a device of the owner's may be registered naming them, and they may allow it.
        body = {"device_id": LATER, "user": "wd1-owner", "speakers": ["wd1-lin"]}
        added = await http.post("/xiaozhi/devices", json=body, headers=admin)
        assert added.status_code == 201, added.text

        # An admin names the owner; audited as the device form is, the owner as its subject.
        await http.delete(f"/xiaozhi/devices/{LATER}/speakers/wd1-lin", headers=admin)
        await http.delete(f"/xiaozhi/devices/{LATER}", headers=admin)
        by_admin = await http.delete("/xiaozhi/withdrawn/wd1-lin?user=wd1-owner", headers=admin)
        assert by_admin.status_code == 200, by_admin.text
        audit = await http.get(
            "/audit", params={"action": "xiaozhi.device.let_back"}, headers=admin
        )
    assert [(a["actor"], a["subject"], a["detail"]) for a in audit.json()] == [
        (actor, "xiaozhi-owner:wd1-owner", {"user": "wd1-owner", "speaker": "wd1-lin"})
        for actor in ("wd1-owner", "admin")
    ]


async def test_a_device_refused_at_speakers_says_how_to_let_the_member_back_without_a_device(
    settings: Settings,
) -> None:
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "wd2-owner")
        lin = await register(http, settings, "wd2-lin")
        await http.post("/xiaozhi/devices", json={"device_id": MAC}, headers=owner)
        await http.post(f"/xiaozhi/devices/{MAC}/allow", headers=lin)
        await http.delete(f"/xiaozhi/devices/{MAC}/speakers/wd2-lin", headers=owner)
        await http.delete(f"/xiaozhi/devices/{MAC}", headers=owner)
        body = {"device_id": LATER, "user": "wd2-owner", "speakers": ["wd2-lin"]}
        refused = await http.post(
            "/xiaozhi/devices", json=body, headers=await admin_headers(settings)
        )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["msg"] == (
        "speakers: wd2-lin withdrawn from wd2-owner's devices: let them back first (ambient "
        "xiaozhi device let-back --user wd2-owner NAME, or DELETE "
        "/xiaozhi/withdrawn/NAME?user=wd2-owner), or register it without them; nothing changed"
    )


async def test_the_settings_page_lets_a_withdrawn_member_back_with_no_device_left(
    settings: Settings,
) -> None:
    async with voice_api(settings) as (_, http):
        owner = await register(http, settings, "wd3-owner")
        lin = await register(http, settings, "wd3-lin")
        await http.patch("/users/me", json={"language": "en"}, headers=owner)
        await http.post("/xiaozhi/devices", json={"device_id": MAC}, headers=owner)
        await http.post(f"/xiaozhi/devices/{MAC}/allow", headers=lin)
        await http.delete(f"/xiaozhi/devices/{MAC}/speakers/wd3-lin", headers=owner)
        await http.delete(f"/xiaozhi/devices/{MAC}", headers=owner)
        token = owner["Authorization"].removeprefix("Bearer ")
        async with signed_in(settings, token, "/app/settings") as page:
            shown = html.unescape((await page.get("/app/settings")).text)
            assert "No 小智 devices yet." in shown
            said = "Withdrawn from your devices, may not allow any of them again until let back"
            assert f"{said}: wd3-lin" in shown, shown
            form = re.search(r'<form[^>]*action="([^"]*let-back)".*?</form>', shown, re.S)
            assert form is not None and "Let wd3-lin back" in form[0], shown
            sent = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form[0]))
            back = await page.post(form[1], data=sent, follow_redirects=True)
        assert "wd3-lin may allow your devices again." in html.unescape(back.text), back.text
        assert said not in html.unescape(back.text)
        assert (await http.get("/xiaozhi/withdrawn", headers=owner)).json() == []


def test_the_operator_lets_a_withdrawn_member_back_naming_the_owner(settings: Settings) -> None:
    from ambient.cli import app as cli

    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    for name in ("wd4-owner", "wd4-mei"):
        assert runner.invoke(cli, ["user", "create", name], env=env).exit_code == 0
    add = ["xiaozhi", "device", "add", "--user", "wd4-owner", MAC, "--speaker", "wd4-mei"]
    assert runner.invoke(cli, add, env=env).exit_code == 0
    for step in (["withdraw", MAC, "wd4-mei"], ["remove", MAC]):
        assert runner.invoke(cli, ["xiaozhi", "device", *step], env=env).exit_code == 0
    table = runner.invoke(cli, ["xiaozhi", "device", "list"], env=env)
    assert "wd4-owner's withdrawn (no device left): wd4-mei" in table.output, table.output
    # --json stays a list of devices (a script reading device_id from each row goes on working).
    rows = json.loads(runner.invoke(cli, ["xiaozhi", "device", "list", "--json"], env=env).output)
    assert rows == [], rows
    kept = runner.invoke(cli, ["xiaozhi", "device", "withdrawn", "--json"], env=env)
    assert json.loads(kept.output) == [{"user": "wd4-owner", "withdrawn": ["wd4-mei"]}], kept.output
    both = ["xiaozhi", "device", "let-back", "--user", "wd4-owner", MAC, "wd4-mei"]
    assert runner.invoke(cli, both, env=env).exit_code == 2
    back = runner.invoke(
        cli, ["xiaozhi", "device", "let-back", "--user", "wd4-owner", "wd4-mei"], env=env
    )
    assert back.exit_code == 0, back.output
    assert "wd4-mei may allow wd4-owner's devices again" in back.output
    gone = runner.invoke(cli, ["xiaozhi", "device", "withdrawn", "--json"], env=env)
    assert json.loads(gone.output) == [], gone.output
    again = runner.invoke(cli, add, env=env)
    assert again.exit_code == 0, again.output
    listed = runner.invoke(cli, ["xiaozhi", "device", "list", "--json"], env=env)
    assert [row["speakers"] for row in json.loads(listed.output)] == [["wd4-mei"]]


async def test_letting_back_from_an_owner_who_is_no_user_blames_the_owner(
    settings: Settings,
) -> None:
    """An owner who is no user was refused at the path's name ("'wd5-lin' is not withdrawn
    from nobody's devices"), and `?user=` empty was read as the caller. The owner is refused
    at the query's user, once the caller may name them (a member is refused alike either way)."""
    async with voice_api(settings) as (_, http):
        lin = await register(http, settings, "wd5-lin")
        await register(http, settings, "wd5-owner")
        admin = await admin_headers(settings)
        for owner in ("wd5-nobody", "wd5-owner"):  # a member: refused, whoever the owner is
            member = await http.delete(f"/xiaozhi/withdrawn/wd5-lin?user={owner}", headers=lin)
            assert member.status_code == 403, member.text
        unknown = await http.delete("/xiaozhi/withdrawn/wd5-lin?user=wd5-nobody", headers=admin)
        empty = await http.delete("/xiaozhi/withdrawn/wd5-lin?user=", headers=lin)
    assert unknown.status_code == 422, unknown.text
    [error] = unknown.json()["detail"]
    assert (error["loc"], error["msg"], error["input"]) == (
        ["query", "user"],
        "no user 'wd5-nobody': name an owner whose withdrawals are listed; nothing changed",
        "wd5-nobody",
    )
    assert empty.status_code == 422, empty.text
    assert [e["loc"] for e in empty.json()["detail"]] == [["query", "user"]]


def test_the_operator_is_refused_an_empty_or_unknown_owner(settings: Settings) -> None:
    from ambient.cli import app as cli

    env = {"AMBIENT_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    assert runner.invoke(cli, ["user", "create", "wd6-mei"], env=env).exit_code == 0
    empty = runner.invoke(cli, ["xiaozhi", "device", "let-back", "--user", "", "wd6-mei"], env=env)
    assert empty.exit_code == 2, empty.output
    assert "from 's devices" not in empty.output
    unknown = ["xiaozhi", "device", "let-back", "--user", "wd6-nobody", "wd6-mei"]
    said = runner.invoke(cli, unknown, env=env)
    assert said.exit_code == 1, said.output
    assert "no user 'wd6-nobody'" in said.output, said.output


async def test_a_member_refused_a_let_back_is_told_to_ask_the_owner_in_their_language(
    settings: Settings,
) -> None:
    """The refusal was plain English on a zh page too, and said "or be an admin" to a member
    who cannot become one: it says whom to ask, in the reader's language."""
    async with voice_api(settings) as (_, http):
        lin = await register(http, settings, "wd7-lin")
        await register(http, settings, "wd7-owner")
        api = await http.delete("/xiaozhi/withdrawn/wd7-lin?user=wd7-owner", headers=lin)
        await http.patch("/users/me", json={"language": "zh"}, headers=lin)
        token = lin["Authorization"].removeprefix("Bearer ")
        async with signed_in(settings, token, "/app/settings") as page:
            sent = {"user": "wd7-owner", "speaker": "wd7-lin"}
            said = await page.post(
                "/app/xiaozhi/withdrawn/let-back", data=sent, follow_redirects=True
            )
    assert (api.status_code, api.json()["detail"]) == (
        403,
        "only the owner of the devices (or an admin) may let back whom the owner withdrew: "
        "ask the owner; nothing changed",
    )
    assert "只有音箱的主人（或管理员）可以放行主人撤回的人：请找主人；没有改动" in html.unescape(
        said.text
    ), said.text
