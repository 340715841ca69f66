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
            content: "The preset says it restricts what the server carries (issue #23, 22)",
            trigger: ".modal:contains('Transactional only')",
        },
        {
            trigger: ".modal .modal-footer .btn-primary",
            run: "click",
        },
        {
            content: "The preset filled the host, port, limit and the empty name",
            trigger: "div[name='smtp_host'] input:value('smtp-relay.brevo.com')",
        },
        {
            trigger: "div[name='name'] input:value('Brevo')",
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

/**
 * Issue #23 (15): the circuit banner in one sentence, its error worded as
 * Test Connection words it; Try Now says what it did and the banner goes.
 */
tours.add("mail_outbound_circuit_tour", {
    steps: () => [
        {
            content: "The banner words the error and names the time zone",
            trigger: ".alert-warning div[name='circuit_summary']:contains('Nothing accepts connections'):contains('(Europe/Bucharest)')",
        },
        {
            content: "No raw errno, and the sentence is not broken around the date",
            trigger: ".alert-warning:not(:contains('Errno'))",
            run() {
                const field = document.querySelector(".alert-warning div[name='circuit_summary']");
                if (field.querySelectorAll("input, .o_field_widget").length) {
                    throw new Error("the banner holds widgets between its words");
                }
            },
        },
        {
            trigger: ".o_form_statusbar button[name='action_try_now']",
            run: "click",
        },
        {
            content: "Try Now says what it did",
            trigger: ".o_notification:contains('will be sent by the next queue run')",
        },
        {
            content: "and the form shows the reset circuit",
            trigger: ".o_form_view:not(:has(.alert-warning div[name='circuit_summary']))",
        },
    ],
});

/**
 * Issue #23 (16): after a failure the checklist keeps readable columns and
 * its banner names the failed step.
 */
tours.add("mail_outbound_failed_test_tour", {
    steps: () => [
        {
            trigger: "button[name='action_test_connection']",
            run: "click",
        },
        {
            trigger: ".modal button[name='action_run']",
            run: "click",
        },
        {
            content: "The banner names the failed step",
            trigger: ".modal .alert-danger:contains('MAIL FROM notifications@example.com')",
        },
        {
            content: "The step column is not squeezed by the fix",
            trigger: ".modal .o_data_row:contains('Authentication')",
            run() {
                const header = document.querySelector(".modal th[data-name='step']");
                if (header.offsetWidth < 150) {
                    throw new Error(`step column ${header.offsetWidth}px wide`);
                }
                // a word wider than its cell is cut in two ("Authenticati on")
                const context = document.createElement("canvas").getContext("2d");
                for (const cell of document.querySelectorAll(
                    ".modal td[name='step'], .modal td[name='smtp_reply']"
                )) {
                    const style = getComputedStyle(cell);
                    context.font = style.font;
                    const room =
                        cell.clientWidth -
                        parseFloat(style.paddingLeft) -
                        parseFloat(style.paddingRight);
                    for (const word of cell.textContent.split(/\s+/)) {
                        if (word.length < 25 && context.measureText(word).width > room) {
                            throw new Error(`"${word}" is cut in its ${room}px cell`);
                        }
                    }
                }
            },
        },
        {
            trigger: ".modal .modal-footer button:contains('Close')",
            run: "click",
        },
    ],
});
