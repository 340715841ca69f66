#!/usr/bin/env python3
"""Screenshots of the addon's screens for static/description and the README.

Against a running Odoo with mail_outbound (``scripts/demo --http-port N``):
adds a realistic load (a daily limit of 500 on the main relay, 1,200 queued
mails, a newsletter server that cannot be reached), runs the queue, then
opens each screen in headless Chromium as the administrator would and saves
it as a PNG::

    scripts/demo --http-port 8912 &        # wait for "Odoo is starting"
    .venv/bin/python scripts/screenshots.py http://localhost:8912 mail_outbound_demo

Needs Chromium (Debian: chromium) and websocket-client (requirements.txt).
"""

import base64
import json
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests
import websocket

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "static" / "description"
TIMEOUT = 30


class Odoo:
    def __init__(self, url, db):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        reply = self.rpc(
            "/web/session/authenticate", db=db, login="admin", password="admin"
        )
        if not reply.get("uid"):
            sys.exit("could not log in as admin")

    def rpc(self, path, **params):
        reply = self.session.post(
            self.url + path,
            json={"jsonrpc": "2.0", "method": "call", "params": params},
            timeout=300,
        ).json()
        if reply.get("error"):
            sys.exit(json.dumps(reply["error"], indent=1)[:3000])
        return reply.get("result")

    def call(self, model, method, *args, **kwargs):
        return self.rpc(
            "/web/dataset/call_kw",
            model=model,
            method=method,
            args=list(args),
            kwargs=kwargs,
        )


def load(odoo):
    """A day's load: the relay at its limit, a newsletter server down."""
    relay = odoo.call("ir.mail_server", "search", [("name", "=", "example.com relay")])
    if odoo.call("ir.mail_server", "search", [("name", "=", "Mailjet (newsletters)")]):
        return relay[0]  # loaded by an earlier run
    odoo.call("ir.mail_server", "write", relay, {"daily_limit": 500})
    fallback = odoo.call("ir.mail_server", "search", [("name", "=", "Fallback relay")])
    odoo.call(
        "ir.mail_server",
        "write",
        fallback,
        {"daily_limit": 300, "outbound_traffic": "transactional"},
    )
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    preset = odoo.call(
        "mail.outbound.provider.preset", "search", [("name", "=", "Mailjet")]
    )
    mailjet = odoo.call(
        "ir.mail_server",
        "create",
        {
            "name": "Mailjet (newsletters)",
            "provider_preset_id": preset[0],
            "smtp_host": "127.0.0.1",
            "smtp_port": closed,
            "smtp_encryption": "none",
            "outbound_traffic": "mass",
            "daily_limit": 200,
            "sequence": 20,
        },
    )
    # the dedicated mass-mailing server of Settings
    for key, value in (
        ("mass_mailing.outgoing_mail_server", "True"),
        ("mass_mailing.mail_server_id", str(mailjet)),
    ):
        odoo.call("ir.config_parameter", "set_param", key, value)
    mail = {
        "email_from": '"Admin" <admin@example.com>',
        "body_html": "<p>Your order is confirmed.</p>",
    }
    odoo.call(
        "mail.mail",
        "create",
        [
            {**mail, "subject": f"Order S{n:05d}", "email_to": f"c{n}@customer.example"}
            for n in range(1200)
        ],
    )
    odoo.call(
        "mail.mail",
        "create",
        [
            {
                **mail,
                "subject": "December newsletter",
                "email_to": f"reader{n}@customer.example",
                "routing_traffic": "mass",
            }
            for n in range(40)
        ],
    )
    for _run in range(3):
        odoo.call("mail.mail", "process_email_queue")
    return relay[0]


def run_queue(odoo):
    for _run in range(3):
        odoo.call("mail.mail", "process_email_queue")


class Browser:
    def __init__(self, odoo):
        binary = next(
            filter(None, map(shutil.which, ("chromium", "google-chrome"))), None
        )
        if not binary:
            sys.exit("Chromium not found (Debian: apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="mail_outbound_shots_")
        self.process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "--window-size=1400,1050",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._connect(odoo)
        except BaseException:
            self.close()  # never leave a browser behind
            raise

    def _connect(self, odoo):
        port_file = pathlib.Path(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                sys.exit("Chromium did not start")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        pages = requests.get(f"http://127.0.0.1:{port}/json", timeout=10).json()
        page = next(p for p in pages if p["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=TIMEOUT, suppress_origin=True
        )
        self.id = 0
        self.odoo = odoo
        self.send(
            "Network.setCookie",
            name="session_id",
            value=odoo.session.cookies["session_id"],
            url=odoo.url,
        )

    def send(self, method, **params):
        self.id += 1
        self.ws.send(json.dumps({"id": self.id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.id:
                if "error" in message:
                    sys.exit(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression):
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        return result.get("result", {}).get("value")

    def wait(self, selector):
        deadline = time.monotonic() + TIMEOUT
        while not self.js(f"!!document.querySelector({json.dumps(selector)})"):
            if time.monotonic() > deadline:
                self.shoot("failed.png")
                sys.exit(f"{selector} never appeared (see failed.png)")
            time.sleep(0.3)
        time.sleep(1)  # animations, fonts

    def click(self, selector):
        self.wait(selector)
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def open(self, path, selector):
        self.send("Page.navigate", url=self.odoo.url + path)
        self.wait(selector)

    def shoot(self, name):
        data = self.send("Page.captureScreenshot", format="png")["data"]
        (OUT / name).write_bytes(base64.b64decode(data))
        print(f"saved {OUT / name}")

    def close(self):
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


def main(url, db):
    odoo = Odoo(url, db)
    relay = load(odoo)
    browser = Browser(odoo)
    try:
        browser.open("/odoo/settings", "#mail_outbound_alias_addresses")
        browser.js(
            "document.querySelector('#email-alias-setting')"
            ".scrollIntoView({block: 'start'})"
        )
        time.sleep(1)
        browser.shoot("screenshot_settings.png")

        browser.open(
            f"/odoo/action-base.action_ir_mail_server_list/{relay}",
            "button[name='action_test_connection']",
        )
        browser.click("button[name='action_test_connection']")
        browser.click(".modal button[name='action_run']")
        browser.wait(".modal .o_data_row")
        browser.shoot("screenshot_test_connection.png")

        browser.open(
            "/odoo/action-mail_outbound.mail_outbound_health_action", ".o_data_row"
        )
        browser.shoot("screenshot_delivery_health.png")

        browser.open(
            "/odoo/action-mail_outbound.mail_delivery_log_action_analysis",
            ".o_graph_renderer canvas",
        )
        browser.shoot("screenshot_delivery_log_graph.png")
    finally:
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
