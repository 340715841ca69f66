"""What an outsider wrote stays with administrators (issue #21): a policy
bounce used to store the receiving server's words, which anyone able to
write to the bounce address can choose, in the last policy bounce of the
server and of the alias domain, which every employee reads. Keep the class,
the code and their meaning; the words stay on the delivery log's events."""

# the sentence that introduced them, in English and in the shipped Romanian
PATTERN = r"\s*(The receiving server said|Serverul destinatar a spus):.*$"


def migrate(cr, version):
    cr.execute(
        "UPDATE ir_mail_server SET last_policy_bounce = "
        "regexp_replace(last_policy_bounce, %s, '', 's') "
        "WHERE last_policy_bounce ~ %s",
        (PATTERN, PATTERN),
    )
    cr.execute(
        "UPDATE mail_alias_domain SET last_policy_bounce = "
        "regexp_replace(last_policy_bounce, %s, '', 's') "
        "WHERE last_policy_bounce ~ %s",
        (PATTERN, PATTERN),
    )
