{
    "name": "Mail Outbound",
    "version": "18.0.1.5.0",
    "category": "Productivity/Discuss",
    "summary": "Exact, explained and reliable outgoing email: documented server "
    "routing, FROM filters, alias domains, delivery diagnosis",
    "author": "mail_outbound developers",
    "website": "https://github.com/mail-outbound/mail_outbound",
    "license": "LGPL-3",
    "development_status": "Beta",
    "maintainers": ["mail-outbound"],
    "depends": ["mail", "base_setup"],
    # both choose the server and rewrite the From (issue #14, README)
    "excludes": ["mail_outbound_static"],
    "external_dependencies": {
        "python": [
            "dnspython",
            "dkimpy",
            "pyspf",
            "publicsuffixlist",
            "pynacl",
            "flufl.bounce",
        ]
    },
    "data": [
        "security/ir.model.access.csv",
        "security/mail_delivery_log_security.xml",
        "security/mail_delivery_event_security.xml",
        "security/mail_alias_domain_security.xml",
        "data/ir_config_parameter_data.xml",
        "data/ir_cron_data.xml",
        "data/mail_alias_domain_data.xml",
        "data/mail_outbound_provider_preset_data.xml",
        "views/mail_outbound_routing_preview_views.xml",
        "views/mail_outbound_connection_test_views.xml",
        "views/mail_delivery_log_views.xml",
        "views/ir_mail_server_health_views.xml",
        "views/ir_mail_server_views.xml",
        "views/mail_outbound_provider_preset_views.xml",
        "views/mail_mail_views.xml",
        "views/res_config_settings_views.xml",
        "views/mail_outbound_dkim_key_views.xml",
        "views/mail_alias_domain_views.xml",
        "views/mail_outbound_dmarc_views.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "mail_outbound/static/tests/tours/*.js",
        ],
    },
}
