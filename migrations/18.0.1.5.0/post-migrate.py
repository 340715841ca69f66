"""DMARC verdicts read stored policies only (issue #22): the policies the
last readiness check of each alias domain found are stored as the first
rows of mail.outbound.dmarc.policy, so that an upgrade does not turn a
known p=reject into "not looked up yet" until the next daily check.

The subdomain policy (sp=) was not kept before: it is learnt at the next
check, and meanwhile subdomains get the domain's own policy."""


def migrate(cr, version):
    cr.execute(
        """
        INSERT INTO mail_outbound_dmarc_policy
               (name, found, found_at, policy_p, adkim, aspf, checked_at, stale,
                create_uid, write_uid, create_date, write_date)
        SELECT DISTINCT ON (lower(domain.name))
               lower(domain.name), domain.dmarc_policy IS NOT NULL,
               domain.dmarc_found_at, domain.dmarc_policy, domain.dmarc_adkim,
               domain.dmarc_aspf, domain.readiness_checked_at, false,
               1, 1, now() at time zone 'utc', now() at time zone 'utc'
          FROM mail_alias_domain domain
         WHERE domain.readiness_checked_at IS NOT NULL
         ORDER BY lower(domain.name), domain.id
        ON CONFLICT (name) DO NOTHING
        """
    )
