"""Every mail_outbound.* system parameter read the tolerant way."""

import pytest

from mail_outbound_tools.settings import (
    MAX_BATCH_SIZE,
    PARAMS,
    batch_size,
    check,
    parse,
    valid_batch_size,
)


@pytest.mark.parametrize(
    ("key", "raw", "value", "warns"),
    [
        # missing (get_param answers False), empty: the default, silently
        ("mail_outbound.claim_timeout", False, 900, False),
        ("mail_outbound.claim_timeout", None, 900, False),
        ("mail_outbound.claim_timeout", "  ", 900, False),
        ("mail_outbound.claim_timeout", "600", 600, False),
        ("mail_outbound.claim_timeout", " 600 ", 600, False),
        # a typo: the default, with a warning
        ("mail_outbound.claim_timeout", "x", 900, True),
        ("mail_outbound.claim_timeout", "6OO", 900, True),
        ("mail_outbound.claim_timeout", "1.5", 900, True),
        # out of range: the nearest bound, with a warning
        ("mail_outbound.claim_timeout", "0", 1, True),
        ("mail_outbound.claim_timeout", "-5", 1, True),
        ("mail_outbound.daily_limit", "x", 0, True),
        ("mail_outbound.daily_limit", "-1", 0, True),
        ("mail_outbound.daily_limit", "500", 500, False),
        ("mail_outbound.queue_commit_every", "0", 1, True),
        ("mail_outbound.queue_commit_every", "abc", 50, True),
        ("mail_outbound.retry_min_backoff", "-300", 1, True),
        ("mail_outbound.retry_max_backoff", "1e9", 7 * 86400, True),
        ("mail_outbound.retry_lifetime_days", "0", 0.01, True),
        ("mail_outbound.retry_lifetime_days", "2.5", 2.5, False),
        ("mail_outbound.retry_lifetime_days", "nan", 5.0, True),
        ("mail_outbound.retry_lifetime_days", "inf", 5.0, True),
        ("mail_outbound.circuit_threshold", "three", 3, True),
        ("mail_outbound.circuit_threshold", "0", 1, True),
        ("mail_outbound.circuit_cooldown", "-1", 1, True),
        ("mail_outbound.delivery_log_days", "x", 30, True),
        ("mail_outbound.delivery_log_days", "0", 0, False),
        ("mail_outbound.after_data_drop", "retry", "retry", False),
        ("mail_outbound.after_data_drop", " RETRY ", "retry", False),
        ("mail_outbound.after_data_drop", "yes", "fail", True),
        ("mail_outbound.smtp_pipelining", "OFF", "off", False),
        ("mail_outbound.smtp_pipelining", "no", "on", True),
    ],
)
def test_parse(key, raw, value, warns):
    parsed, warning = parse(key, raw)
    assert parsed == value
    assert type(parsed) is type(PARAMS[key].default)
    assert bool(warning) is warns
    if warning:
        assert key in warning


def test_every_default_is_in_its_range():
    for param in PARAMS.values():
        assert parse(param.key, str(param.default)) == (param.default, None)
        assert check(param.key, param.default) is None


def test_check_names_the_range():
    assert check("mail_outbound.daily_limit", -1) == "0 to 1e+09"
    assert check("mail_outbound.after_data_drop", "x") == "fail, retry"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (1000, 1000),
        ("50", 50),
        (0, None),
        (-1, None),
        (MAX_BATCH_SIZE + 1, None),
        ("x", None),
        (None, None),
        (True, None),
    ],
)
def test_valid_batch_size(value, valid):
    assert valid_batch_size(value) == valid


@pytest.mark.parametrize(
    ("raw", "asked", "value", "warns"),
    [
        (False, 1000, 1000, False),
        ("200", 1000, 200, False),
        ("0", 1000, 1000, True),
        ("x", 30, 30, True),
    ],
)
def test_batch_size_parameter(raw, asked, value, warns):
    got, warning = batch_size(raw, asked)
    assert got == value
    assert bool(warning) is warns


# Each documented parameter broken three ways: a typo, a negative, empty.
# (typo, negative, empty): what the queue uses. A typo or a negative warns;
# empty is no value (Odoo's get_param answers it so): the default, silently.
BROKEN = {
    "mail_outbound.claim_timeout": (900, 1, 900),
    "mail_outbound.queue_commit_every": (50, 1, 50),
    "mail_outbound.daily_limit": (0, 0, 0),
    "mail_outbound.retry_min_backoff": (300, 1, 300),
    "mail_outbound.retry_max_backoff": (4000, 1, 4000),
    "mail_outbound.retry_lifetime_days": (5.0, 0.01, 5.0),
    "mail_outbound.circuit_threshold": (3, 1, 3),
    "mail_outbound.circuit_cooldown": (300, 1, 300),
    "mail_outbound.delivery_log_days": (30, 0, 30),
    "mail_outbound.after_data_drop": ("fail", "fail", "fail"),
    "mail_outbound.smtp_pipelining": ("on", "on", "on"),
}


def test_the_broken_table_covers_every_parameter():
    assert set(BROKEN) == set(PARAMS)


@pytest.mark.parametrize(
    ("key", "raw", "value", "warns"),
    [
        (key, raw, expected[index], raw != "")
        for key, expected in BROKEN.items()
        for index, raw in enumerate(("x", "-1", ""))
    ],
)
def test_every_parameter_broken_three_ways(key, raw, value, warns):
    parsed, warning = parse(key, raw)
    assert (parsed, type(parsed)) == (value, type(PARAMS[key].default))
    assert bool(warning) is warns
    if warning:
        assert key in warning and repr(raw) in warning


@pytest.mark.parametrize(
    ("raw", "warns"), [("x", True), ("-1", True), ("", False), ("  ", False)]
)
def test_batch_size_parameter_broken_three_ways(raw, warns):
    value, warning = batch_size(raw, 1000)
    assert value == 1000
    assert bool(warning) is warns
    if warning:
        assert "mail.mail.queue.batch.size" in warning


# -- a FROM filter is checked before it is written (issue #9, point 4) -----


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (",", "empty_part"),
        (" , ,", "empty_part"),
        ("example.com\x00", "header_injection"),
        ("a@example.com\r\nBcc: x@evil.test", "header_injection"),
        ("<a@example.com>", "display_name"),
        ("a.com,,b.com", None),
        ("", None),
    ],
)
def test_check_filter(raw, problem):
    from mail_outbound_tools.addresses import FilterError, check_filter

    if problem is None:
        check_filter(raw)
        return
    with pytest.raises(FilterError) as caught:
        check_filter(raw)
    assert caught.value.problem == problem
