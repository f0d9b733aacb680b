"""A channel stored before a rule refused it (a misspelled `&mention=@all`): said at every send,
never a block on saving the others; a new or changed channel is checked as ever."""

from __future__ import annotations

import httpx
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from ambient.deps import WorkerDeps
from ambient.domain.notify import DeliveryStatus, NotifyRequest
from ambient.storage import Database
from ambient.storage.users import UserRepository
from tests.conftest import unique
from tests.notify.test_push_config import api  # noqa: F401  (the API as bob)
from tests.notify.test_robot_url_refusals import ALARM
from tests.notify.test_robot_url_targets import WECOM_URL

OLD = {"type": "wecom", "target": f"{WECOM_URL}old-key&mention=@all"}


async def _stored_before(db: Database, name: str, *channels: dict[str, str]) -> None:
    """``name``'s push config as a release before the option rule stored it (not checked)."""
    async with db.session() as session:
        user = await UserRepository(session).get(name)
        assert user is not None
        await UserRepository(session).set_push_config(user, {"channels": list(channels)})
        await session.commit()


async def test_a_stored_channel_a_rule_now_refuses_does_not_block_saving_the_others(
    api: httpx.AsyncClient,  # noqa: F811
    deps: WorkerDeps,
) -> None:
    await _stored_before(deps.db, "bob", OLD)
    # The settings page (and a GET then PUT) sends the stored channel back as it was: the
    # channel added beside it was refused for it, and nothing could be saved until it was fixed.
    kept = await api.put("/users/me/push", json={"channels": [OLD, {"type": "inbox"}]})
    assert kept.status_code == 200, kept.text
    stored = (await api.get("/users/me/push")).json()["channels"]
    assert [(c["type"], c["target"]) for c in stored] == [
        ("wecom", OLD["target"]),
        ("inbox", ""),
    ]
    # A new channel, or the stored one changed, is checked and refused by its index.
    changed = {"type": "wecom", "target": f"{WECOM_URL}new-key&mention=@all"}
    for channels in ([{"type": "inbox"}, changed], [OLD, {"type": "inbox"}, changed]):
        refused = await api.put("/users/me/push", json={"channels": channels})
        assert refused.status_code == 422, refused.text
        (problem,) = refused.json()["detail"]
        index = len(channels) - 1
        assert problem["loc"] == ["body", "channels", index, "target"], problem
        assert "unknown wecom option 'mention'" in problem["msg"], problem
    assert len((await api.get("/users/me/push")).json()["channels"]) == 2  # unchanged
    # The kept one is said at send, every time, by its problem.
    notify = NotifyActivities(deps.db, deps.channels)
    request = NotifyRequest(user="bob", message=ALARM, targets=[], idempotency_key=unique("k"))
    sent = await ActivityEnvironment().run(notify.notify, request)
    failed = [d for d in sent.deliveries if d.status is DeliveryStatus.FAILED]
    assert [d.channel for d in failed] == ["wecom"]
    assert "unknown wecom option 'mention'" in (failed[0].error or ""), failed
