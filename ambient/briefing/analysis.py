"""Log analysis of any time range: the reduction a briefing makes of its day, on request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ambient.briefing.config import BriefingConfig, ClsLogSpec, FileLogSpec
from ambient.briefing.errors import BriefingError, InvalidBriefingError
from ambient.briefing.logreport import LogReducer
from ambient.briefing.logreport_markdown import render_markdown
from ambient.briefing.logs import LogFileError, read_log_source
from ambient.briefing.models import LogAnalysis
from ambient.clients.tencent.client import TencentCloud
from ambient.clients.tencent.errors import TencentCloudError
from ambient.domain.field_errors import field_problems
from ambient.settings import Settings


async def analyze_logs(
    source: dict[str, Any],
    start: datetime,
    end: datetime,
    *,
    settings: Settings,
    tencent: TencentCloud,
    is_admin: Callable[[], Awaitable[bool]],
) -> LogAnalysis:
    """The reduction report (templates, trend, anomalies, keywords) for any time range.
    ``is_admin``: whether the caller may read any file (asked of a file source only)."""
    for name, value in (("start", start), ("end", end)):
        # Log times are instants: a time without an offset is hours off in any other zone.
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidBriefingError(
                f"{name}: {value.isoformat()} has no UTC offset; give one, "
                f"e.g. {value.isoformat()}+08:00 or {value.isoformat()}Z",
                field=name,
            )
    if end <= start:
        raise InvalidBriefingError("end: must be later than start")
    try:
        spec = BriefingConfig.model_validate({"log_source": source}).log_source
    except ValidationError as exc:
        raise InvalidBriefingError("; ".join(field_problems(exc))) from None
    assert spec is not None
    if isinstance(spec, ClsLogSpec) and not tencent.configured:
        raise InvalidBriefingError(
            "log_source: Tencent Cloud is not configured; use a file source or set "
            "TENCENTCLOUD_SECRET_ID/KEY"
        )
    reducer = LogReducer()
    try:
        read = await read_log_source(
            spec,
            start,
            end,
            reducer,
            log_dir=settings.log_dir,
            # Only a file source asks who may read it: a CLS search reads no role.
            admin=isinstance(spec, FileLogSpec) and await is_admin(),
            tencent=tencent,
            # A line's wall time (no offset) is read where the range was asked, as a
            # briefing reads it in its time zone.
            zone=start.tzinfo or UTC,
        )
    except LogFileError as exc:
        raise InvalidBriefingError(str(exc)) from None
    except (OSError, TencentCloudError) as exc:
        raise BriefingError(f"log_source could not be read: {exc}") from None
    report = reducer.report(start=start, end=end)
    label = spec.path if isinstance(spec, FileLogSpec) else spec.topic_id
    # Said in the offset the range was asked in, as a briefing says its day in its zone.
    markdown = render_markdown(report, tz=start.tzinfo)
    return LogAnalysis(report=report, markdown=markdown, source=label, read=read)
