"""Pure-Python core of mail_outbound: never imports odoo."""
