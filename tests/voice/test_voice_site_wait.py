"""A watch's status, spoken, says that its page's server asked us to wait, and until when."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.speech import said_time
from tests.briefing.harness import make_user
from tests.conftest import running_worker, unique
from tests.support.servers import serve
from tests.voice.support import say, voice_client, worker_state
from tests.watches.test_check_now_paused import ZONE, Busy


async def test_the_status_of_a_watch_whose_site_asked_to_wait_says_until_when(
    dev_env: WorkflowEnvironment, deps: WorkerDeps
) -> None:
    """A check now during the pause is not made; the voice said only "checked 2 times"."""
    user = unique("vw")
    await make_user(deps.db, user)
    deps.settings = deps.settings.model_copy(update={"fetch_allow_cidrs": ["127.0.0.1/32"]})
    page = Busy(pause=600, busy=1_000)
    routes = [Route("/news", page.page)]
    async with serve(Starlette(routes=routes)) as base, running_worker(dev_env.client, deps) as w:
        state = worker_state(dev_env.client, deps, w.task_queue)
        config = {"urls": [f"{base}/news"], "check_interval_minutes": 60}
        ref = await state.tasks.create(user, "web_monitor", config, name="busy-news")
        asked = await state.tasks.trigger(user, ref.task_id)
        assert asked.waits and [status for _, status in page.requests] == [429]
        # In words, as every clock time is said ("14点30分", not "14:30").
        until = said_time(f"{asked.waits[0].until.astimezone(ZoneInfo(ZONE)):%H:%M}")
        async with voice_client(state, user) as client:
            said = await say(client, "task_status", name="busy news")
        await state.tasks.delete(user, ref.task_id)
    assert said.endswith(f"；网站要求我们稍等，{until}之后再检查。"), said
