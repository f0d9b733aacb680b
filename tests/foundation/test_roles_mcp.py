"""Roles over MCP: permissions come from the database on every call, and every call is audited."""

from __future__ import annotations

from typing import Any

from ambient.domain.users import Grant, Role, RollbackPermission, UserCreate
from ambient.storage.audit import AuditRepository
from ambient.storage.users import UserRepository
from ambient.wiring import AppState
from tests.standins.tencent_api import TencentApi
from tests.tencent.test_cloud_tools import call, client, cloud_state

__all__ = ["cloud_state"]  # the fixture, shared with the cloud tool tests

SCALE = {"cluster_id": "cls-abcd1234", "node_pool_id": "np-1"}


async def _user(state: AppState, name: str) -> tuple[str, str]:
    async with state.db.session() as session:
        user = await UserRepository(session).get(name)
    assert user is not None
    return user.role, user.rollback_permission


async def _audit(state: AppState, **filters: Any) -> list[tuple[str, str, dict[str, Any]]]:
    async with state.db.session() as session:
        records = await AuditRepository(session).list(**filters)
    return [(r.actor, r.action, r.detail) for r in records]


async def test_member_cannot_grant_itself_over_mcp_and_the_attempt_is_audited(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    _, state = cloud_state
    async with client(state, "viewer") as c:
        _, me = await call(c, "whoami")
        refused, message = await call(
            c, "grant_permission", user_name="viewer", rollback_permission="execute"
        )
        promoted, promote_message = await call(c, "grant_permission", user_name="ops", role="admin")
    assert (me["role"], me["rollback_permission"]) == ("member", "dry_run")
    assert refused and "Only an admin may grant" in message
    assert promoted and "Only an admin may grant" in promote_message
    assert await _user(state, "viewer") == ("member", "dry_run")
    assert await _user(state, "ops") == ("member", "execute")
    assert [(a, act) for a, act, _ in await _audit(state, action="user.grant.refused")] == [
        ("viewer", "user.grant.refused"),
        ("viewer", "user.grant.refused"),
    ]


async def test_admin_grants_over_mcp_are_audited_and_never_to_itself(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    _, state = cloud_state
    async with state.db.session() as session:
        await UserRepository(session).create(UserCreate(name="boss", role=Role.ADMIN))
        await session.commit()
    async with client(state, "boss") as c:
        _, granted = await call(
            c, "grant_permission", user_name="guest", rollback_permission="dry_run"
        )
        self_grant, message = await call(
            c, "grant_permission", user_name="boss", rollback_permission="execute"
        )
        empty, empty_message = await call(c, "grant_permission", user_name="guest")
        missing, missing_message = await call(
            c, "grant_permission", user_name="nobody", role="admin"
        )
        too_long, _ = await call(c, "grant_permission", user_name="x" * 5000, role="admin")
    assert granted["changes"] == {"rollback_permission": {"old": "none", "new": "dry_run"}}
    assert self_grant and "No one grants to themselves" in message
    assert empty and "Nothing to grant" in empty_message
    assert missing and "No user 'nobody'" in missing_message
    assert too_long
    assert await _user(state, "boss") == ("admin", "dry_run")
    assert await _audit(state, subject="user:guest", action="user.grant") == [
        ("boss", "user.grant", {"rollback_permission": {"old": "none", "new": "dry_run"}})
    ]


async def test_scale_node_pool_reads_permission_from_the_database_and_audits_every_call(
    cloud_state: tuple[TencentApi, AppState],
) -> None:
    api, state = cloud_state
    async with client(state, "guest") as c:
        refused, message = await call(c, "scale_node_pool", **SCALE, desired=4)
    assert refused and "rollback_permission 'none'" in message
    async with client(state, "viewer") as c:
        # A claim in the request changes nothing: the permission is the database's (an
        # argument the tool does not take is refused by name, and nothing runs).
        claimed, said = await call(
            c, "scale_node_pool", **SCALE, desired=4, rollback_permission="execute"
        )
        assert claimed and "rollback_permission: not an argument of scale_node_pool" in said
        _, dry = await call(c, "scale_node_pool", **SCALE, desired=4)
        pool = api.node_pools["cls-abcd1234"][0]
        assert dry["executed"] is False and pool["DesiredNodesNum"] == 3
        # Granted meanwhile (by the operator): the same session's next call sees it.
        async with state.db.session() as session:
            users = UserRepository(session)
            viewer = await users.get("viewer")
            assert viewer is not None
            await users.grant(
                viewer, Grant(rollback_permission=RollbackPermission.EXECUTE), actor="operator"
            )
            await session.commit()
        _, done = await call(c, "scale_node_pool", **SCALE, desired=5, mode="execute")
        out_of_range, _ = await call(c, "scale_node_pool", **SCALE, desired=9, mode="execute")
    assert done["executed"] is True and api.node_pools["cls-abcd1234"][0]["DesiredNodesNum"] == 5
    assert out_of_range
    async with client(state, "viewer") as c:
        # Refused by the argument check, before anything else: nothing to audit.
        long_id, long_message = await call(
            c, "scale_node_pool", cluster_id="c" * 5000, node_pool_id="np-1", desired=4
        )
    assert long_id and "cluster_id" in long_message
    outcomes = [
        (actor, detail["permission"], detail["desired"], detail["outcome"])
        for actor, _, detail in await _audit(state, subject="tke:cls-abcd1234/np-1")
    ]
    assert outcomes == [
        ("guest", "none", 4, "refused"),
        ("viewer", "dry_run", 4, "dry_run"),
        ("viewer", "execute", 5, "executed"),
        ("viewer", "execute", 9, "failed"),
    ]
    records = await _audit(state, subject="tke:cls-abcd1234/np-1")
    assert records[2][2]["previous"] == 3
    assert "within [1, 6]" in records[3][2]["reason"]
    assert {action for _, action, _ in records} == {"cloud.scale_node_pool"}
