/**
 * What an administrator does with mail_outbound, in a real browser. Four
 * short tours, each started at its own page by tests/test_tour.py, so that
 * none depends on navigation timing; every step waits for what it checks.
 */
import { registry } from "@web/core/registry";

const tours = registry.category("web_tour.tours");

tours.add("mail_outbound_settings_tour", {
    steps: () => [
        {
            content: "The resulting addresses are shown under the alias domain",
            trigger: "div[name='mail_outbound_reply_address']:contains('catchall@example.com')",
        },
        {
            content: "Change the catchall alias",
            trigger: "div[name='alias_domain_catchall_alias'] input",
            run: "edit replies && press Tab",
        },
        {
            content: "The warning names the old and the new address",
            trigger: ".modal:contains('catchall@example.com → replies@example.com')",
        },
        {
            trigger: ".modal .modal-footer .btn-primary",
            run: "click",
        },
        {
            content: "The address follows the alias before saving",
            trigger: "div[name='mail_outbound_reply_address']:contains('replies@example.com')",
        },
        {
            content: "0 says it means no limit",
            trigger: "#mail_outbound_delivery_setting:contains('0: no limit')",
        },
        {
            content: "Discard: nothing is saved",
            trigger: ".o_form_button_cancel",
            run: "click",
        },
        {
            trigger: "div[name='mail_outbound_reply_address']:contains('catchall@example.com')",
        },
    ],
});

tours.add("mail_outbound_server_tour", {
    steps: () => [
        {
            trigger: ".o_list_button_add",
            run: "click",
        },
        {
            content: "Choose a provider preset",
            trigger: "div[name='provider_preset_id'] input",
            run: "edit Brevo",
        },
        {
            trigger: ".o-autocomplete--dropdown-item:contains('Brevo')",
            run: "click",
        },
        {
            content: "The preset filled the host, port and limit",
            trigger: "div[name='smtp_host'] input:value('smtp-relay.brevo.com')",
        },
        {
            trigger: "div[name='smtp_port'] input:value('587')",
        },
        {
            content: "The loopback server's preset, created by the test",
            trigger: "div[name='provider_preset_id'] input",
            run: "edit Loopback",
        },
        {
            trigger: ".o-autocomplete--dropdown-item:contains('Loopback')",
            run: "click",
        },
        {
            trigger: "div[name='smtp_host'] input:value('127.0.0.1')",
        },
        {
            trigger: "div[name='name'] input",
            run: "edit Loopback Relay",
        },
        {
            content: "Test Connection saves the server and opens the checklist",
            trigger: "button[name='action_test_connection']",
            run: "click",
        },
        {
            trigger: ".modal button[name='action_run']",
            run: "click",
        },
        {
            content: "The checklist: every step, skipped ones with their reason",
            trigger: ".modal .alert-success",
        },
        {
            trigger: ".modal .o_data_row:contains('DATA')",
        },
        {
            trigger: ".modal .o_data_row:contains('Not encrypted')",
        },
        {
            trigger: ".modal .modal-footer button:contains('Close')",
            run: "click",
        },
        {
            content: "Routing Preview from the server's form",
            trigger: ".o_form_statusbar button:contains('Routing Preview')",
            run: "click",
        },
        {
            content: "The server is pre-filled, and decides",
            trigger: ".modal div[name='mail_server_id'] input:value('Loopback Relay')",
        },
        {
            trigger: ".modal div[name='result_server']:contains('Loopback Relay')",
        },
        {
            content: "The company's alias domain, on a single-company database too",
            trigger: ".modal div[name='alias_domain_id']:contains('example.com')",
        },
        {
            trigger: ".modal .modal-footer button:contains('Close')",
            run: "click",
        },
        {
            trigger: "body:not(:has(.modal))",
        },
    ],
});

tours.add("mail_outbound_mail_tour", {
    steps: () => [
        {
            content: "The sent mail's Routing tab",
            trigger: ".o_notebook a.nav-link:contains('Routing')",
            run: "click",
        },
        {
            trigger: "div[name='routing_server_id']:contains('Tour Server')",
        },
        {
            content: "Traffic is read-only once the mail is sent",
            trigger: "div[name='routing_traffic'].o_readonly_modifier",
        },
        {
            trigger: ".o_notebook button:contains('Delivery Attempts')",
            run: "click",
        },
        {
            content: "Its delivery attempts, with the recipients",
            trigger: ".o_data_row:contains('customer@destination.example')",
        },
    ],
});

tours.add("mail_outbound_log_graph_tour", {
    steps: () => [
        {
            trigger: ".o_switch_view.o_graph",
            run: "click",
        },
        {
            content: "Delivery attempts as a graph",
            trigger: ".o_graph_renderer canvas",
        },
    ],
});
