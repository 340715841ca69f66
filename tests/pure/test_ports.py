import pytest

from mail_outbound_tools.ports import (
    is_port_blocked,
    parse_blocked_ports,
    suggested_port,
)


@pytest.mark.parametrize(
    "value,expected",
    [("", set()), ("25", {25}), (" 25 , 2526,", {25, 2526}), ("25;465", {25, 465})],
)
def test_parse_blocked_ports(value, expected):
    assert parse_blocked_ports(value) == expected


@pytest.mark.parametrize(
    "value,bad", [("25, smtp", "smtp"), ("0", "0"), ("70000", "70000")]
)
def test_parse_blocked_ports_names_the_bad_part(value, bad):
    with pytest.raises(ValueError) as caught:
        parse_blocked_ports(value)
    assert caught.value.args == (bad,)


def test_blocked_and_suggested():
    assert is_port_blocked(25, {25})
    assert not is_port_blocked(587, {25})
    assert not is_port_blocked(0, {25})
    assert suggested_port("starttls") == 587
    assert suggested_port("none") == 587
    assert suggested_port("ssl") == 465
