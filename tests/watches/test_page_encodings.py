"""Pages in the encoding they declare: many Chinese sites still serve GBK or GB2312, said in
the Content-Type or only in a <meta> of the page."""

# ruff: noqa: F811 - the fixtures `site` and `loopback_deps` are imported and used by name

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.storage.repositories import EventRepository
from ambient.watches.models import TaskStatus
from tests.conftest import running_worker
from tests.watches.site import Site, article
from tests.watches.test_polling import _changes, _checks, fast, start, until
from tests.watches.test_workflows import loopback_deps, site  # noqa: F401  (fixtures)

META = '<meta charset="gb2312">'
HTTP_EQUIV = '<meta http-equiv="Content-Type" content="text/html; charset=GBK">'


def page(head: str, *paragraphs: str) -> str:
    return article(*paragraphs).replace("<head>", f"<head>{head}")


@pytest.mark.parametrize(
    ("head", "content_type", "encoding"),
    [
        ("", "text/html; charset=GBK", "gbk"),
        (META, "text/html", "gb2312"),
        (HTTP_EQUIV, "text/html", "gbk"),
        ("", "text/html; charset=gb18030", "gb18030"),
    ],
    ids=["header", "meta-charset", "meta-http-equiv", "gb18030"],
)
async def test_a_page_in_a_chinese_encoding_is_read_as_chinese_and_its_keyword_hits(
    dev_env: WorkflowEnvironment,
    loopback_deps: WorkerDeps,
    site: tuple[Site, str],
    head: str,
    content_type: str,
    encoding: str,
) -> None:
    state, base = site

    def serve(*paragraphs: str) -> None:
        state.encoded["/gov"] = (page(head, *paragraphs).encode(encoding), content_type)

    serve("今日系统运行正常。")
    config = fast([f"{base}/gov"], keywords=["数据库故障"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await until(lambda: _checks(handle, 2))
        serve("今日系统运行正常。", "下午发生数据库故障，已恢复。")
        await handle.signal("check_now")
        await until(lambda: _changes(handle, 1))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    assert final.detail["hits_total"] == 1
    async with loopback_deps.db.session() as session:
        rows = await EventRepository(session).list(task=handle.id, limit=100)
    (hit,) = [row.payload for row in rows if row.kind == "watch.hit"]
    assert "下午发生数据库故障，已恢复。" in str(hit["excerpt"])
