"""Make the addon's pure core importable as ``mail_outbound_tools``.

The repository root is an Odoo module whose ``__init__`` imports odoo, so
``import mail_outbound.tools`` would drag the ORM in. The pure suite must run on
a machine without Odoo, so ``tools/`` is loaded as a stand-alone package.
"""

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if "mail_outbound_tools" not in sys.modules:
    _load("mail_outbound_tools", ROOT / "tools")
if str(ROOT / "tests") not in sys.path:
    # tests/loopback_smtp.py (loopback SMTP servers) has no odoo import either
    sys.path.insert(0, str(ROOT / "tests"))
