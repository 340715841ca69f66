"""Every translatable string of the addon has its Romanian translation.

    python scripts/i18n_check.py FRESH.pot i18n/ro.po

FRESH.pot is the template Odoo exports from a database where the addon is
installed (scripts/test makes it), so a string added in code, a field or a view
is seen even when i18n/mail_outbound.pot was not regenerated. Prints each
msgid without a translation (or with a fuzzy one) and exits 1 if any.
"""

import sys

import polib


def missing(template, translation):
    done = {
        (entry.msgctxt, entry.msgid)
        for entry in translation
        if entry.msgstr.strip() and "fuzzy" not in entry.flags and not entry.obsolete
    }
    return [
        entry.msgid
        for entry in template
        if entry.msgid and (entry.msgctxt, entry.msgid) not in done
    ]


def main(pot_path, po_path):
    template, translation = polib.pofile(pot_path), polib.pofile(po_path)
    absent = missing(template, translation)
    for msgid in absent:
        print(f"untranslated: {msgid[:120]!r}")
    print(
        f"i18n: {len(template) - len(absent)} of {len(template)} strings "
        f"translated in {po_path}"
    )
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
