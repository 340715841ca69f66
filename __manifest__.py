{
    "name": "Mail Outbound",
    "version": "18.0.1.0.0",
    "category": "Productivity/Discuss",
    "summary": "Exact, explained and reliable outgoing email: documented server "
    "routing, FROM filters, alias domains, delivery diagnosis",
    "author": "mail_outbound developers",
    "website": "https://github.com/mail-outbound/mail_outbound",
    "license": "LGPL-3",
    "development_status": "Beta",
    "maintainers": ["mail-outbound"],
    "depends": ["mail", "base_setup"],
    "external_dependencies": {"python": []},
    "data": [],
    "installable": True,
    "application": False,
}
