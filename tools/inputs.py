"""What the database and a mail header can hold, checked before writing.

A NUL reaches PostgreSQL as a raw "string literal cannot contain NUL"
error, a number past 2**31 - 1 as a raw ``NumericValueOutOfRange``, and a
line break in a one-line value (a server name, a host, an address) breaks
the headers it is later put in. The Odoo layer
(``models/mail_outbound_input_guard.py``) refuses them with a message that
names the field.
"""

# PostgreSQL's integer column
INT_MIN = -(2**31)
INT_MAX = 2**31 - 1


def refused_character(value, multiline=False):
    """The first character of ``value`` a field cannot hold, or ``""``.

    One-line values (``multiline=False``) refuse CR and LF as well as NUL.
    """
    if not isinstance(value, str):
        return ""
    refused = "\0" if multiline else "\0\r\n"
    return next((char for char in value if char in refused), "")


def integer_out_of_range(value):
    """True when ``value`` is an int a PostgreSQL integer cannot store."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT_MIN <= value <= INT_MAX
    )
