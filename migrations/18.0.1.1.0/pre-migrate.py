"""Batch marks and hand-over records were tables made by raw SQL in init();
they are models now (mail.outbound.batch, mail.outbound.handover). Their
rows are kept (a worker that died before the upgrade is still settled):
arrays become JSON, and the tables get the id column of a model."""


def migrate(cr, version):
    conversions = {
        "mail_outbound_batch": "mail_ids",
        "mail_outbound_handover": "partner_ids",
    }
    for table, column in conversions.items():
        cr.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = %s",
            (table, column),
        )
        row = cr.fetchone()
        if not row:
            continue
        if row[0] == "ARRAY":
            cr.execute(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" '  # noqa: S608
                f'TYPE jsonb USING to_jsonb("{column}")'
            )
        cr.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = 'id'",
            (table,),
        )
        if not cr.fetchone():
            cr.execute(f'ALTER TABLE "{table}" ADD COLUMN id SERIAL PRIMARY KEY')
