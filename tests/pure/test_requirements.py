"""requirements.txt is the one list of the addon's Python dependencies."""

import ast
import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _sections():
    sections, current = {}, None
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        header = re.match(r"#\s*\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), [])
        elif line.strip() and not line.startswith("#"):
            assert current is not None, f"{line!r} stands before any [section]"
            current.append(line.strip())
    return sections


def _name(pin):
    return re.split(r"[=<>!~;\[ ]", pin, maxsplit=1)[0].lower()


def test_every_pin_is_exact():
    for pins in _sections().values():
        for pin in pins:
            assert "==" in pin, f"{pin} is not pinned"


def test_manifest_external_dependencies_are_the_runtime_section():
    manifest = ast.literal_eval((ROOT / "__manifest__.py").read_text())
    declared = manifest.get("external_dependencies", {}).get("python", [])
    runtime = _sections().get("runtime", [])
    assert sorted(d.lower() for d in declared) == sorted(_name(p) for p in runtime)


def test_test_tools_are_listed():
    names = {_name(p) for p in _sections()["test"]}
    assert {"aiosmtpd", "pytest", "ruff", "pylint-odoo"} <= names


def _odoo_requirements():
    spec = importlib.util.spec_from_file_location(
        "odoo_requirements", ROOT / "scripts" / "odoo_requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLE = """\
# comment
cryptography==3.4.8; python_version < '3.12'  # old
cryptography==42.0.8 ; python_version >= '3.12'  # (Noble)
python-ldap==3.4.4 ; sys_platform != 'win32' and python_version >= '3.12'
pypiwin32 ; sys_platform == 'win32'
pytz  # no version pinning
"""


def test_odoo_requirements_take_the_pins_of_python_312():
    pins = _odoo_requirements().pins(SAMPLE)
    assert pins == ["cryptography==42.0.8", "pytz"]


def test_odoo_requirements_keep_older_pins_when_asked():
    pins = _odoo_requirements().pins(SAMPLE, python_version="3.10")
    assert pins == ["cryptography==3.4.8", "pytz"]
