"""A pause, resume or trigger that races a delete: the delete lands between the service's look
at the task (still running) and its signal, so the workflow, already stopping, ignores the
control. It answered what was asked ("paused", "active") for a task that is stopped."""

from __future__ import annotations

from typing import Any

import pytest

from ambient.watches.configs import TaskState
from ambient.watches.inputs import TaskStateError
from ambient.watches.service import TaskService
from tests.conftest import unique
from tests.support.users import register
from tests.watches.site import article
from tests.watches.test_lifecycle import GatedSite, gated  # noqa: F401  (fixture)
from tests.watches.test_lifecycle_service import monitor, service  # noqa: F401  (fixture)
from tests.watches.test_workflows import loopback_deps  # noqa: F401  (fixture)


@pytest.mark.parametrize("control", ["pause", "resume", "trigger"])
async def test_a_control_overtaken_by_a_delete_is_refused_as_stopped_not_answered_as_applied(
    service: TaskService,  # noqa: F811
    gated: tuple[GatedSite, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    control: str,
) -> None:
    state, base = gated
    state.pages["/a"] = article("A page.")
    user = unique("racer")
    await register(service.db, user)
    task_id = (await service.create(user, "web_monitor", monitor(base, "/a"), "raced")).task_id
    if control == "resume":
        await service.pause(user, task_id)
    looked = service._live

    async def deleted_after_the_look(task: str) -> Any:
        # Another request's delete lands right after this control's look at the task.
        before = await looked(task)
        await service.delete(user, task)
        return before

    monkeypatch.setattr(service, "_live", deleted_after_the_look)
    # Said as a control sent after the delete is (every door frames this refusal).
    with pytest.raises(TaskStateError, match="is stopped; create it again to restart it"):
        await getattr(service, control)(user, task_id)
    # The workflow ignored the control (it was stopping): the task is stopped, as get_task says.
    assert (await service.get(user, task_id)).state is TaskState.STOPPED
