"""The shared report page shows an alert's text as text: no remote image, no live link."""

from __future__ import annotations

from datetime import UTC, datetime

from ambient.remediation.alerts import Alert
from ambient.remediation.views import AuditLine, RemediationView, report_markdown
from ambient.render import markdown_html

PIXEL = "![seen](https://tracker.example/pixel.gif)"
LINK = "[docs](https://evil.example/x)"


def _view(alert: Alert, state: str, audit: list[AuditLine], **more: str) -> RemediationView:
    """A run of ``alert`` as the report shows it."""
    return RemediationView(
        remediation_id="remediation/abc",
        run_key="remediation/abc/1",
        user="alice",
        alert=alert,
        fingerprint="abc",
        state=state,
        mode_asked="dry_run",
        audit=audit,
        **more,
    )


def test_alert_text_on_the_report_loads_nothing_remote() -> None:
    alert = Alert(
        source="monitor",
        cluster_id="cls-7kq2m0ab",
        namespace="default",
        workload="api",
        metric=f"cpu {PIXEL}",
        message=f"cpu high {PIXEL} see {LINK}",
    )
    line = AuditLine(at=datetime(2026, 1, 2, tzinfo=UTC), actor=PIXEL, action="x", detail={})
    view = _view(alert, "aborted", [line], outcome=f"stopped {PIXEL}")
    html = markdown_html(report_markdown(view))
    # Anyone who can send an alert learned when the link was opened (a tracking pixel).
    assert "<img" not in html
    assert "<a " not in html
    # The text is still there, as written.
    assert (
        "cpu high ![seen](https://tracker.example/pixel.gif) see [docs](https://evil.example/x)"
        in html
    )


def test_the_report_says_which_answer_an_answers_records_hold() -> None:
    """An approval's two records, the door's ("approve") and the run's ("approval"), read
    alike for a yes and a no: the report (as the CLI's `show` and the page) says which, and
    the door's the door it came through."""
    at = datetime(2026, 1, 2, tzinfo=UTC)
    alert = Alert(
        source="monitor",
        cluster_id="cls-7kq2m0ab",
        namespace="default",
        workload="api",
        metric="cpu",
    )
    lines = [
        AuditLine(
            at=at,
            actor="bob",
            action="approve",
            detail={"rung": 2, "approve": False, "via": "voice"},
        ),
        AuditLine(at=at, actor="bob", action="approval", detail={"approve": False}),
        AuditLine(at=at, actor="amy", action="approve", detail={"rung": 3, "approve": True}),
        AuditLine(at=at, actor="amy", action="approval", detail={"approve": True}),
        AuditLine(at=at, actor="remediation", action="hand_over", detail={}),
    ]
    view = _view(alert, "handed_over", lines)
    rows = [row for row in report_markdown(view).splitlines() if row.startswith("| 2026-01-02")]
    assert [row.rsplit("|", 2)[-2].strip() for row in rows] == [
        "refusal sent by voice",
        "refused",
        "approval sent",
        "approved",
        "hand over",
    ]
