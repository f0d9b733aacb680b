"""A refused briefing config names its field in the API's 422, a list item's too."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError

from ambient.briefing.service import InvalidBriefingError, parse_config
from api.routers.briefings import http_error


def test_a_refused_list_item_is_named_in_the_422() -> None:
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config({"news_urls": ["https://example.com/", "javascript:x"]})
    assert refused.value.field == "news_urls.1"
    answer = http_error(refused.value)
    assert isinstance(answer, RequestValidationError)
    assert [error["loc"] for error in answer.errors()] == [["body", "news_urls", "1"]]


def test_a_refused_field_is_named_in_the_422() -> None:
    with pytest.raises(InvalidBriefingError) as refused:
        parse_config({"timezone": "Nowhere"})
    answer = http_error(refused.value)
    assert isinstance(answer, RequestValidationError)
    assert [error["loc"] for error in answer.errors()] == [["body", "timezone"]]
