"""Sizes and durations at the CLI edge: GB = 1e9, GiB = 2**30 (nccl-tests prints sizes in
bytes; engines report memory in GiB); anything else is an input error."""

import pytest

from sizer.errors import InputError
from sizer.units import parse_bytes, parse_seconds


@pytest.mark.parametrize("text, value", [("4096", 4096), ("16MiB", 16 * 2**20), ("1GB", 10**9),
                                         ("1.5 GiB", 3 * 2**29), ("8k", 8000), (512, 512)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text, value", [("0.2", 0.2), ("200ms", 0.2), ("2s", 2.0), ("50us", 5e-5)])
def test_parse_seconds(text, value):
    assert parse_seconds(text) == pytest.approx(value)


@pytest.mark.parametrize("text, needle", [("-16MiB", "positive"), ("0", "positive"),
                                          ("12 parsecs", "cannot parse"), ("", "cannot parse")])
def test_bad_sizes(text, needle):
    with pytest.raises(InputError, match=needle):
        parse_bytes(text)


def test_bad_durations():
    with pytest.raises(InputError, match="positive"):
        parse_seconds("-5ms")
    with pytest.raises(InputError, match="cannot parse"):
        parse_seconds("soon")
