"""Blacklist After Hard Bounces set to 0 (never) survives the upgrade.

Up to 18.0.1.2.0 Settings stored 0 as no parameter, and no parameter read as
0. Now the loader's default (tools/settings.py, 5, as installed) is what no
parameter means, and Settings stores 0 as "0". A database without the
parameter chose "never": it gets "0", with the data record's xml id, so that
loading data/ir_config_parameter_data.xml (noupdate) does not create it again
with 5 (a noupdate record whose row was deleted is created again on update).
"""

KEY = "mail_outbound.bounce_blacklist_after"


def migrate(cr, version):
    if not version:
        return
    cr.execute("SELECT 1 FROM ir_config_parameter WHERE key = %s", (KEY,))
    if cr.fetchone():
        return
    cr.execute(
        "INSERT INTO ir_config_parameter (key, value, create_uid, create_date, "
        "write_uid, write_date) VALUES (%s, '0', 1, now() at time zone 'UTC', 1, "
        "now() at time zone 'UTC') RETURNING id",
        (KEY,),
    )
    param_id = cr.fetchone()[0]
    cr.execute(
        "DELETE FROM ir_model_data WHERE module = 'mail_outbound' "
        "AND name = 'config_bounce_blacklist_after'"
    )
    cr.execute(
        "INSERT INTO ir_model_data (module, name, model, res_id, noupdate) "
        "VALUES ('mail_outbound', 'config_bounce_blacklist_after', "
        "'ir.config_parameter', %s, true)",
        (param_id,),
    )
