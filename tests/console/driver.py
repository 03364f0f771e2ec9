"""A real Chromium, driven by Selenium, for the console tests.

The Rust test writes one JSON command per line on stdin; this answers each
with one JSON line on stdout: the page's address, title and text, and the
browser console's messages since the last answer (a CSP violation shows up
there). Another site (a chat page, an attacker's page) is served from a
second port on 127.0.0.1, a different origin from the console's.
"""

import http.server
import json
import os
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait

PAGES = {}


class Other(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path, "not found").encode()
        self.send_response(200 if self.path in PAGES else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def other_site():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    # "localhost" and "127.0.0.1" are different sites to the browser.
    return srv, f"http://localhost:{srv.server_address[1]}"


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage",
    ]:
        o.add_argument(a)
    if os.environ.get("CONSOLE_VIEWPORT", "phone") == "phone":
        o.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3}},
        )
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def settle(d):
    WebDriverWait(d, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def answer(d, **extra):
    settle(d)
    logs = [e["message"] for e in d.get_log("browser")]
    out = {
        "ok": True,
        "url": d.current_url,
        "title": d.title,
        "text": d.find_element(By.TAG_NAME, "body").text,
        "logs": logs,
    }
    out.update(extra)
    return out


def main():
    shots = os.environ["CONSOLE_SHOTS"]
    os.makedirs(shots, exist_ok=True)
    srv, other = other_site()
    d = browser()
    try:
        for line in sys.stdin:
            c = json.loads(line)
            cmd = c["cmd"]
            try:
                if cmd == "quit":
                    break
                elif cmd == "open":
                    d.get(c["url"])
                    r = answer(d)
                elif cmd == "type":
                    el = d.find_element(By.CSS_SELECTOR, c["css"])
                    el.clear()
                    el.send_keys(c["text"])
                    r = answer(d, inputmode=el.get_attribute("inputmode"))
                elif cmd == "click":
                    old = d.find_element(By.TAG_NAME, "html")
                    d.find_element(By.CSS_SELECTOR, c["css"]).click()
                    if c.get("navigates", True):
                        WebDriverWait(d, 10).until(lambda d: old.id != d.find_element(By.TAG_NAME, "html").id)
                    r = answer(d)
                elif cmd == "shot":
                    path = os.path.join(shots, c["name"] + ".png")
                    d.save_screenshot(path)
                    r = answer(d, path=path)
                elif cmd == "chat":
                    # A chat message with the link, on another site; the
                    # person taps it, and the console's page opens.
                    PAGES["/chat"] = (
                        "<!doctype html><meta name=viewport content='width=device-width'>"
                        f"<p>breakglass: approval needed <a id=open href='{c['link']}'>open</a></p>"
                    )
                    d.get(other + "/chat")
                    d.find_element(By.ID, "open").click()
                    time.sleep(0.5)
                    WebDriverWait(d, 10).until(lambda d: d.current_url.startswith(c["link"].split("/console/")[0]))
                    settle(d)
                    # Let a same-origin bounce (a meta refresh) finish.
                    WebDriverWait(d, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]"))
                    r = answer(d)
                elif cmd == "forge":
                    # An attacker's page that submits the console's form to
                    # itself from another origin.
                    fields = "".join(
                        f"<input type=hidden name='{k}' value='{v}'>" for k, v in c["fields"].items()
                    )
                    PAGES["/forge"] = (
                        "<!doctype html><body>"
                        f"<form id=f method=post action='{c['action']}'>{fields}</form>"
                        "<script>document.getElementById('f').submit()</script>"
                    )
                    d.get(other + "/forge")
                    WebDriverWait(d, 10).until(lambda d: d.current_url.startswith(c["action"]))
                    r = answer(d)
                elif cmd == "attr":
                    el = d.find_element(By.CSS_SELECTOR, c["css"])
                    r = answer(d, value=el.get_attribute(c["name"]))
                elif cmd == "axe":
                    # axe-core (npm), injected into the page as it is.
                    axe = os.environ.get("BREAKGLASS_AXE_JS") or os.path.expanduser(
                        "~/.cache/breakglass-npm/node_modules/axe-core/axe.min.js")
                    with open(axe) as f:
                        d.execute_script(f.read())
                    found = d.execute_async_script(
                        "const done = arguments[arguments.length - 1];"
                        "axe.run(document)"
                        ".then(r => done({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
                        " impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))}))"
                        ".catch(e => done({passes: 0, violations: [{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]}));"
                    )
                    r = answer(d, violations=found["violations"], passes=found["passes"])
                elif cmd == "text":
                    r = answer(d)
                elif cmd == "authenticator":
                    # A virtual platform authenticator (a passkey) that
                    # verifies its user unless told otherwise; "replace": in
                    # place of the one added before (a new phone).
                    if c.get("replace"):
                        d.remove_virtual_authenticator()
                    o = VirtualAuthenticatorOptions()
                    o.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
                    o.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
                    o.has_resident_key = True
                    o.has_user_verification = True
                    o.is_user_verified = c.get("verified", True)
                    o.is_user_consenting = True
                    d.add_virtual_authenticator(o)
                    r = answer(d)
                elif cmd == "verified":
                    d.set_user_verified(c["value"])
                    r = answer(d)
                elif cmd == "capture":
                    # Run the page's ceremony, but keep the form's answer
                    # instead of sending it (what an eavesdropper on the
                    # page would hold).
                    d.execute_script(
                        "HTMLFormElement.prototype.submit = function () {"
                        " window.bgCaptured = document.getElementById('credential').value; };")
                    d.find_element(By.ID, "use-key").click()
                    WebDriverWait(d, 10).until(lambda d: d.execute_script("return window.bgCaptured || null"))
                    r = answer(d, value=d.execute_script("return window.bgCaptured"))
                elif cmd == "post":
                    # A form POST from the console's own origin, in this
                    # browser's session (fetch sends its cookies).
                    got = d.execute_async_script(
                        "const done = arguments[arguments.length - 1];"
                        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1])})"
                        ".then(async r => done({status: r.status, body: await r.text()}))"
                        ".catch(e => done({status: 0, body: String(e)}));",
                        c["url"], c["fields"])
                    r = answer(d, status=got["status"], body=got["body"])
                elif cmd == "wait_text":
                    WebDriverWait(d, 10).until(
                        lambda d: c["text"] in d.find_element(By.TAG_NAME, "body").text)
                    r = answer(d)
                else:
                    r = {"ok": False, "error": f"unknown command {cmd}"}
            except Exception as e:  # the test reads the failure
                r = {"ok": False, "error": f"{type(e).__name__}: {e}", "url": d.current_url}
            print(json.dumps(r), flush=True)
    finally:
        d.quit()
        srv.shutdown()


if __name__ == "__main__":
    main()
