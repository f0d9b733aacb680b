"""GET /audit?after=<last id> pages the log without losing a record that commits late: on
PostgreSQL a sequence hands ids out at insert, so a record read after a higher one's commit
was never returned to a reader that kept only the last id it read."""

from __future__ import annotations

from datetime import timedelta

from ambient.settings import Settings
from ambient.storage import Database
from ambient.storage.audit import AuditRepository
from api.app import create_app
from tests.foundation.test_postgres import postgres_url  # noqa: F401 - the fixture
from tests.support.admins import admin_headers
from tests.support.servers import free_port, http_client, serve


async def test_paging_the_audit_log_never_skips_a_record_committed_late(
    pg: Database,
    settings: Settings,
    postgres_url: str,  # noqa: F811
) -> None:
    settings = settings.model_copy(
        update={"database_url": postgres_url, "temporal_address": f"127.0.0.1:{free_port()}"}
    )
    admin = await admin_headers(settings, "root")
    async with serve(create_app(settings)) as base, http_client(base) as api:
        first = (await api.get("/audit", headers=admin)).json()
        last = first[-1]["id"] if first else 0
        # Two actions under way at once: the first takes its id, the second commits first.
        async with pg.session() as slow, pg.session() as quick:
            early = await AuditRepository(slow).append(
                actor="root", action="test.slow", subject="user:ann"
            )
            late = await AuditRepository(quick).append(
                actor="root", action="test.quick", subject="user:bob"
            )
            assert early.id < late.id
            await quick.commit()
            page = (await api.get("/audit", params={"after": last}, headers=admin)).json()
            seen = [r["action"] for r in page]
            last = page[-1]["id"] if page else last
            await slow.commit()
        page = (await api.get("/audit", params={"after": last}, headers=admin)).json()
        seen += [r["action"] for r in page]
        last = page[-1]["id"] if page else last
        # A gap no transaction will fill (one rolled back) holds nothing back once settled.
        async with pg.session() as rolled:
            await AuditRepository(rolled).append(actor="root", action="test.gone", subject="x")
            await rolled.rollback()
        async with pg.session() as session:
            after_gap = await AuditRepository(session).append(
                actor="root", action="test.after", subject="user:cy"
            )
            after_gap.created_at -= timedelta(minutes=2)
            await session.commit()
        page = (await api.get("/audit", params={"after": last}, headers=admin)).json()
        seen += [r["action"] for r in page]
    assert seen == ["test.slow", "test.quick", "test.after"], seen
