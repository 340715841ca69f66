"""Every mail_outbound.* system parameter read the tolerant way."""

import pathlib
import re
import xml.etree.ElementTree as ET

import pytest

from mail_outbound_tools.settings import (
    MAX_BATCH_SIZE,
    PARAMS,
    batch_size,
    bound,
    check,
    markdown_table,
    parse,
    to_text,
    valid_batch_size,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
        # numbers that are not finite, or too big for a float
        ("mail_outbound.claim_timeout", "1e309", 900, True),
        ("mail_outbound.claim_timeout", "-1e309", 900, True),
        ("mail_outbound.claim_timeout", "9" * 400, 900, True),
        ("mail_outbound.claim_timeout", "NaN", 900, True),
        ("mail_outbound.daily_limit", "1e309", 0, True),
        ("mail_outbound.daily_limit", "1e300", 10**9, True),
        ("mail_outbound.queue_commit_every", "inf", 50, True),
        # a control character: a paste gone wrong
        ("mail_outbound.claim_timeout", "600\r\n", 900, True),
        ("mail_outbound.claim_timeout", "6\x000", 900, True),
        ("mail_outbound.smtp_pipelining", "off\n", "on", True),
        ("mail_outbound.claim_timeout", "\t", 900, True),
        # the hard bounces before a blacklisting
        ("mail_outbound.bounce_blacklist_after", False, 5, False),
        ("mail_outbound.bounce_blacklist_after", "0", 0, False),
        ("mail_outbound.bounce_blacklist_after", "3", 3, False),
        ("mail_outbound.bounce_blacklist_after", "-2", 0, True),
        ("mail_outbound.bounce_blacklist_after", "five", 5, True),
        # ports
        ("mail_outbound.blocked_ports", False, frozenset(), False),
        ("mail_outbound.blocked_ports", "25, 2526", frozenset({25, 2526}), False),
        ("mail_outbound.blocked_ports", "25;2526", frozenset({25, 2526}), False),
        ("mail_outbound.blocked_ports", "25, smtp", frozenset(), True),
        ("mail_outbound.blocked_ports", "70000", frozenset(), True),
        ("mail_outbound.blocked_ports", "-25", frozenset(), True),
        ("mail_outbound.blocked_ports", "25\r\n587", frozenset(), True),
        # a switch: Settings stores "True", a hand may type 1 or yes
        ("mail_outbound.enforce_fixed_server_filter", False, False, False),
        ("mail_outbound.enforce_fixed_server_filter", "True", True, False),
        ("mail_outbound.enforce_fixed_server_filter", "1", True, False),
        ("mail_outbound.enforce_fixed_server_filter", "no", False, False),
        ("mail_outbound.enforce_fixed_server_filter", "abc", False, True),
        ("mail_outbound.enforce_fixed_server_filter", "-1", False, True),
        # a CA file: an absolute path to a file that is there
        ("mail_outbound.smtp_ca_file", False, "", False),
        ("mail_outbound.smtp_ca_file", __file__, __file__, False),
        ("mail_outbound.smtp_ca_file", "ca.pem", "", True),
        ("mail_outbound.smtp_ca_file", "/nonexistent/ca.pem", "", True),
        ("mail_outbound.smtp_ca_file", __file__ + "\x00", "", True),
        # DNS servers
        ("mail_outbound.dns_nameserver", False, "", False),
        ("mail_outbound.dns_nameserver", " 127.0.0.1:5353 ", "127.0.0.1:5353", False),
        (
            "mail_outbound.dns_nameserver",
            "10.0.0.1, [::1]:53",
            "10.0.0.1, [::1]:53",
            False,
        ),
        ("mail_outbound.dns_nameserver", "dns.example.com", "", True),
        ("mail_outbound.dns_nameserver", "127.0.0.1:0", "", True),
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
        assert parse(param.key, to_text(param.key, param.default)) == (
            param.default,
            None,
        )
        assert check(param.key, to_text(param.key, param.default)) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mail_outbound.daily_limit", 500),
        ("mail_outbound.retry_lifetime_days", 2.5),
        ("mail_outbound.bounce_blacklist_after", 0),
        ("mail_outbound.blocked_ports", frozenset({25, 2526})),
        ("mail_outbound.blocked_ports", frozenset()),
        ("mail_outbound.enforce_fixed_server_filter", True),
        ("mail_outbound.enforce_fixed_server_filter", False),
        ("mail_outbound.after_data_drop", "retry"),
    ],
)
def test_what_settings_store_reads_back_the_same(key, value):
    assert parse(key, to_text(key, value)) == (value, None)


def test_check_is_the_warning_of_the_run():
    # the Settings form refuses exactly what the run would not use as typed
    assert check("mail_outbound.retry_lifetime_days", 60) is None
    assert "outside 0.01 to 60" in check("mail_outbound.retry_lifetime_days", 100)
    assert "outside 0 to 1000000000" in check("mail_outbound.daily_limit", -1)
    assert check("mail_outbound.after_data_drop", "x")


def test_bounds_as_typed():
    assert bound(PARAMS["mail_outbound.daily_limit"], 10**9) == "1000000000"
    assert bound(PARAMS["mail_outbound.retry_lifetime_days"], 0.01) == "0.01"
    assert bound(PARAMS["mail_outbound.retry_lifetime_days"], 60) == "60"


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


# Each parameter broken in every shape a hand (or a paste) gives it: what
# the run uses instead. A number below its range gives the lower bound; every
# other malformed value gives the default. Each warns once, naming the key.
MALFORMED = (
    "1e309",  # float() says inf: int() of it raises OverflowError
    "-1e309",
    "9" * 400,
    "nan",
    "inf",
    "x",
    "6OO",
    "-1",
    "1.5e",
    "on\r\nBcc: x",
    "5\x00",
    "\n",
)


def _fallback(param, raw):
    if param.kind in ("int", "float") and raw == "-1":
        return param.minimum
    return param.default


def test_the_malformed_values_cover_every_kind():
    assert {param.kind for param in PARAMS.values()} == {
        "int",
        "float",
        "choice",
        "bool",
        "ports",
        "path",
        "nameservers",
    }


@pytest.mark.parametrize("key", sorted(PARAMS))
@pytest.mark.parametrize("raw", MALFORMED)
def test_every_parameter_broken_every_way(key, raw):
    param = PARAMS[key]
    parsed, warning = parse(key, raw)
    assert parsed == _fallback(param, raw)
    assert type(parsed) is type(param.default)
    assert warning and key in warning and repr(raw) in warning


@pytest.mark.parametrize("key", sorted(PARAMS))
@pytest.mark.parametrize("raw", (None, False, "", "   "))
def test_no_value_is_the_default_silently(key, raw):
    assert parse(key, raw) == (PARAMS[key].default, None)


def test_the_data_file_agrees_with_the_table():
    records = ET.parse(ROOT / "data" / "ir_config_parameter_data.xml").getroot()
    found = {}
    for record in records.iter("record"):
        fields = {field.get("name"): field.text for field in record.iter("field")}
        found[fields["key"]] = fields["value"]
    assert found
    for key, value in found.items():
        assert parse(key, value) == (PARAMS[key].default, None), key


def _xml_ids():
    ids = set()
    for path in ROOT.glob("**/*.xml"):
        if ".venv" not in path.parts:
            ids.update(re.findall(r'\bid="([\w.]+)"', path.read_text()))
    return ids


def test_every_key_the_addon_reads_goes_through_the_table():
    """No ``mail_outbound.*`` parameter is read around the loader: every such
    literal of the code is a key of the table or an XML id."""
    xml_ids = _xml_ids()
    sources = [
        path
        for folder in ("models", "wizards", "tools")
        for path in (ROOT / folder).glob("*.py")
    ]
    assert sources
    for path in sources:
        text = path.read_text()
        assert not re.search(r'get_param\(\s*"mail_outbound\.', text), path
        for name in re.findall(r'"mail_outbound\.(\w+)"', text):
            assert f"mail_outbound.{name}" in PARAMS or name in xml_ids, (path, name)
        for key in re.findall(r'_mail_outbound_get\(\s*"([^"]+)"', text):
            assert key in PARAMS, (path, key)


def test_the_readme_table_is_the_table():
    """README.md shows :func:`markdown_table` as it is; regenerate with
    ``python -c 'from tools.settings import markdown_table; print(markdown_table())'``
    from the repository root after a change of the table."""
    assert markdown_table() in (ROOT / "README.md").read_text()


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
