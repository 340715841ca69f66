"""Print Odoo 18.0's Python requirements as pins for this Python.

Odoo's requirements.txt pins each package per Python version, after the
versions Debian and Ubuntu ship. Python 3.11 is pinned to Jammy-era releases
(cryptography 3.4.8, gevent 22.10, ...) that have no wheels for it and fail to
build; the versions Odoo pins for Python 3.12 (Noble) are wheels that run on
3.11 too, so below 3.12 the markers are evaluated as if this were 3.12.
python-ldap is left out: it only serves the auth_ldap module, builds from
source against libldap/libsasl headers, and no test of this addon uses it.

    python scripts/odoo_requirements.py /path/to/odoo/requirements.txt
"""

import platform
import sys

# pip is in every virtualenv; its vendored `packaging` evaluates the markers
from pip._vendor.packaging.requirements import Requirement

SKIPPED = {"python-ldap"}


def pins(text, python_version=None):
    env = {}
    if sys.version_info < (3, 12):
        env = {"python_version": "3.12", "python_full_version": "3.12.0"}
    if python_version:
        env = {"python_version": python_version}
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.name.lower() in SKIPPED:
            continue
        if req.marker and not req.marker.evaluate(env):
            continue
        req.marker = None
        out.append(str(req))
    return out


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        print("\n".join(pins(handle.read())))
    print(
        f"# for {platform.python_implementation()} {platform.python_version()}",
        file=sys.stderr,
    )
