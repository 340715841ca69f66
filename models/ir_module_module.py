from odoo import _, api, models
from odoo.exceptions import UserError
from odoo.tools.translate import TranslationImporter, get_po_paths

# Modules that decide, like this one, which server sends a mail and with
# which From: installed together, each would undo the other's decision.
EXCLUDED_MODULES = ("mail_outbound_static",)


# Core fields whose label or help this module rewords. Core's translations
# are loaded first and later modules never overwrite them, so Romanian kept
# core's "FROM Filtering" and its old help beside this module's words.
# (XML ids of this module's records of those fields)
REWORDED_CORE_FIELDS = ("field_ir_mail_server__from_filter",)


class IrModuleModule(models.Model):
    _inherit = "ir.module.module"

    @api.model
    def _load_module_terms(
        self, modules, langs, overwrite=False, imported_module=False
    ):
        result = super()._load_module_terms(modules, langs, overwrite, imported_module)
        if "mail_outbound" in modules and not overwrite:
            importer = TranslationImporter(self.env.cr, verbose=False)
            for lang in langs:
                for po_path in get_po_paths("mail_outbound", lang):
                    importer.load_file(
                        po_path,
                        lang,
                        xmlids={
                            f"mail_outbound.{name}" for name in REWORDED_CORE_FIELDS
                        },
                    )
            importer.save(overwrite=True)
        return result

    def button_install(self):
        """Refuse mail_outbound_static beside this module, and say why.

        The manifest's ``excludes`` refuses it too (also when this module
        is the one being installed), with core's shorter message.
        """
        for module in self.filtered(lambda m: m.name in EXCLUDED_MODULES):
            raise UserError(self._get_exclusion_message(module))
        return super().button_install()

    def _get_exclusion_message(self, module):
        return _(
            "%(module)s (%(name)s) cannot be installed beside Mail Outbound "
            "(mail_outbound): both choose the outgoing server and rewrite the "
            "From of every mail, each undoing the other's choice. Mail "
            "Outbound already covers it: a server's FROM Filtering is its "
            "domain whitelist, and a From it may not send is rewritten to the "
            "alias domain's notification address (a fixed From: set the alias "
            "domain's Default From to a full address). Uninstall Mail Outbound "
            "first to use %(name)s.",
            module=module.shortdesc,
            name=module.name,
        )
