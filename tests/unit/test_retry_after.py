from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.errors import retry_after_seconds


def test_delta_seconds_and_http_dates_are_both_read():
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("1.5") == 1.5
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= retry_after_seconds(in_a_minute) <= 60


@pytest.mark.parametrize("header", [None, "", "soon", "Mon, 99 Foo 2026 00:00:00"])
def test_an_absent_or_unreadable_header_is_none(header):
    assert retry_after_seconds(header) is None


def test_a_past_date_or_negative_delay_means_now():
    assert retry_after_seconds("-3") == 0
    assert retry_after_seconds("Mon, 01 Jan 2001 00:00:00 GMT") == 0
