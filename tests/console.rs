//! The web console in a real browser: Debian's Chromium, driven by Selenium
//! (tests/console/driver.py), against the real server on localhost, on
//! both databases. A screenshot of each page of the approval is saved under
//! the target directory (`tmp/console-screenshots/`).
//!
//! Plain HTTP checks (headers, cookies, forms without a browser) sit beside
//! them: what a browser would never send is what an attacker sends.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use breakglass::config::{AlertChannel, Alerts, Config};
use breakglass::domain::Role;
use common::provider::Provider;
use common::{Backend, TestApp, World, PASSWORD, PUBLIC_URL_OF_THIS_SERVER};
use serde_json::{json, Value};

both_backends!(
    a_custodian_approves_from_the_alert_in_three_actions,
    a_requester_files_and_releases_once_in_the_browser,
    refusals_show_the_codes_message_and_change_nothing,
    a_cross_site_form_or_a_get_of_an_action_changes_nothing,
    sessions_end_at_sign_out_idle_expiry_and_revocation,
    a_sign_in_link_signs_in_once,
    custodians_enrol_auditors_audit_admins_administer_in_the_browser,
    oidc_sign_in_with_pkce_and_the_local_fallback_with_the_provider_down,
    breakglass_login_keeps_an_owner_only_token_the_other_commands_use,
    a_custodian_registers_a_key_and_approves_with_it_on_a_phone,
    an_answer_without_user_verification_or_replayed_is_refused,
    a_custodian_with_no_key_left_gets_a_new_one_with_the_quorum,
);

/// A browser, one command at a time.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Every console message seen, for the CSP check.
    logs: Vec<String>,
}

fn shots_dir(test: &str, backend: Backend) -> String {
    format!(
        "{}/console-screenshots/{test}-{backend:?}",
        env!("CARGO_TARGET_TMPDIR")
    )
}

impl Browser {
    fn start(shots: &str) -> Browser {
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/console/driver.py"
            ))
            .env("CONSOLE_SHOTS", shots)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "python3 with selenium, chromium and chromium-driver (scripts/test installs them)",
            );
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
            logs: vec![],
        }
    }

    fn send(&mut self, c: Value) -> Value {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let r: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the driver answered {line:?} to {c}: {e}"));
        assert_eq!(r["ok"], true, "{c} failed: {r}");
        for l in r["logs"].as_array().into_iter().flatten() {
            self.logs.push(l.as_str().unwrap_or("").to_string());
        }
        r
    }

    fn open(&mut self, url: &str) -> Value {
        self.send(json!({ "cmd": "open", "url": url }))
    }

    fn click(&mut self, css: &str) -> Value {
        self.send(json!({ "cmd": "click", "css": css }))
    }

    fn typed(&mut self, css: &str, text: &str) -> Value {
        self.send(json!({ "cmd": "type", "css": css, "text": text }))
    }

    fn shot(&mut self, name: &str) -> Value {
        self.send(json!({ "cmd": "shot", "name": name }))
    }

    /// axe-core finds no serious or critical accessibility violation on
    /// the page the browser shows.
    fn axe(&mut self, what: &str) {
        let r = self.send(json!({ "cmd": "axe" }));
        let bad: Vec<&Value> = r["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(bad.is_empty(), "accessibility of {what}: {bad:?}");
        // axe ran its rules (a page it could not check passes none).
        assert!(
            r["passes"].as_u64().unwrap() > 10,
            "axe checked {what}: {r}"
        );
    }

    /// No Content-Security-Policy violation (nor any other error) in the
    /// browser's console on any page so far.
    fn assert_no_csp_violation(&self) {
        let bad: Vec<&String> = self
            .logs
            .iter()
            .filter(|l| l.contains("Content Security Policy") || l.contains("Refused to"))
            .collect();
        assert!(bad.is_empty(), "CSP violations: {bad:?}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({ "cmd": "quit" }));
        let _ = self.child.wait();
    }
}

/// The console's address as a browser reaches it.
fn console(t: &TestApp) -> String {
    t.base.replace("127.0.0.1", "localhost")
}

fn text(r: &Value) -> &str {
    r["text"].as_str().unwrap_or("")
}

/// Sign `who` in through a one-time link minted as the host would.
async fn sign_in_with_link(b: &mut Browser, t: &TestApp, who: &str, roles: &[Role]) {
    let link = t
        .app
        .issue_sign_in_link("host-operator", who, roles)
        .await
        .unwrap();
    let r = b.open(&format!(
        "{}/console/signin/link?s={}",
        console(t),
        link.secret.reveal()
    ));
    assert!(text(&r).contains("signs you in once"), "{r}");
    let r = b.click("button[type=submit]");
    assert!(text(&r).contains(who), "signed in as {who}: {r}");
}

async fn request_state(w: &World, id: &str) -> Value {
    w.t.get(format!("/v1/requests/{id}"), &w.admin).await.ok()
}

/// A webhook receiver that keeps what it is sent.
async fn hook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| {
        let g = g.clone();
        async move {
            g.lock().unwrap().push(serde_json::from_str(&body).unwrap());
            axum::http::StatusCode::ACCEPTED
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, got)
}

async fn a_custodian_approves_from_the_alert_in_three_actions(backend: Backend) {
    let (hook_url, got) = hook().await;
    let tweak = move |c: &mut Config| {
        c.settings.alerts = Some(Alerts {
            public_url: Some(PUBLIC_URL_OF_THIS_SERVER.into()),
            max_attempts: 3,
            channels: vec![AlertChannel {
                name: "oncall".into(),
                kind: "webhook".into(),
                url: format!("{hook_url}/hook"),
                events: ["request.create".to_string()].into(),
                secret: Some(Arc::new(zeroize::Zeroizing::new(vec![7u8; 32]))),
            }],
        });
    };
    let w = World::with(TestApp::start_configured(backend, &tweak).await).await;
    let t = &w.t;
    let mut b = Browser::start(&shots_dir("approval", backend));
    // Ann signed in when her on-call shift began.
    sign_in_with_link(&mut b, t, "ann", &[Role::Custodian]).await;

    let id = w.request().await;
    let mut link = None;
    for _ in 0..50 {
        t.app.deliver_alerts().await.unwrap();
        link = got
            .lock()
            .unwrap()
            .iter()
            .find_map(|m| m["link"].as_str().map(str::to_owned));
        if link.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let link = link.expect("the alert arrives with a link");
    assert_eq!(link, format!("{}/console/requests/{id}", console(t)));

    // 1. Open the link from the chat (another site: the bounce brings the
    //    session cookie along).
    let r = b.send(json!({ "cmd": "chat", "link": link }));
    let page = text(&r);
    assert!(page.contains("aws-prod-root"), "{r}");
    assert!(
        page.contains("prod is down") && page.contains("INC-42"),
        "{r}"
    );
    assert!(page.contains("0 of 3 approvals"), "{r}");
    assert!(page.contains("left"), "time left is shown: {r}");
    b.shot("1-request");
    b.axe("the request page");
    // 2. The code, on a numeric keypad.
    let r = b.typed("#code", &t.code("ann"));
    assert_eq!(r["inputmode"], "numeric");
    b.shot("2-code");
    // 3. Approve.
    let r = b.click("#approve");
    assert!(text(&r).contains("Your approval is recorded"), "{r}");
    assert!(text(&r).contains("1 of 3 approvals"), "{r}");
    b.shot("3-approved");
    b.axe("the request page, approved");

    let v = request_state(&w, &id).await;
    assert_eq!(v["approvals"], 1);
    assert_eq!(v["decisions"][0]["custodian"], "ann");
    let approvals: Vec<_> = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "request.approve" && e.outcome == "success")
        .collect();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].actor, "ann");
    b.assert_no_csp_violation();
}

async fn a_requester_files_and_releases_once_in_the_browser(backend: Backend) {
    let w = World::new(backend).await;
    let t = &w.t;
    let mut b = Browser::start(&shots_dir("release", backend));
    // The local fallback: a token pasted once.
    let r = b.open(&format!("{}/console/requests/new", console(t)));
    assert!(
        r["url"].as_str().unwrap().contains("/console/signin"),
        "{r}"
    );
    b.typed("#token", &w.requester);
    let r = b.click("#token-signin");
    assert!(
        text(&r).contains("New request"),
        "back where they were going: {r}"
    );
    b.axe("the new request page");
    b.typed("#reason", "root MFA reset");
    b.typed("#ticket", "INC-77");
    let r = b.click("#file");
    assert!(text(&r).contains("Waiting for approvals: 0 of 3"), "{r}");
    let url = r["url"].as_str().unwrap().to_string();
    let id = url.rsplit('/').next().unwrap().to_string();
    b.shot("1-filed");

    w.approve(&id, "ann", &w.ann).await.ok();
    w.approve(&id, "bob", &w.bob).await.ok();
    w.approve(&id, "sec", &w.sec).await.ok();
    let r = b.open(&url);
    assert!(text(&r).contains("Approved"), "{r}");
    let r = b.click("#release");
    assert!(text(&r).contains(PASSWORD), "the secret is shown: {r}");
    assert!(text(&r).contains("Copy"), "with copy buttons: {r}");
    b.shot("2-released");
    b.axe("the released credential");

    let r = b.open(&url);
    assert!(text(&r).contains("Released at"), "{r}");
    assert!(!text(&r).contains(PASSWORD), "{r}");
    assert!(!text(&r).contains("Release now"), "{r}");
    b.shot("3-after");
    let v = request_state(&w, &id).await;
    assert_eq!(v["state"], "released");
    let releases = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "request.release" && e.outcome == "success")
        .count();
    assert_eq!(releases, 1);

    // A code-only MFA seed is shown as its live code, with its countdown.
    t.post(
        "/v1/credentials",
        &w.admin,
        json!({ "name": "mfa-root", "account_id": "210987654321", "policy": "one-sre",
                "fields": { "password": "p", "mfa_seed": common::MFA_SEED }, "code_only": ["mfa_seed"] }),
    )
    .await
    .ok();
    let id = t
        .post(
            "/v1/requests",
            &w.requester,
            json!({ "credential": "mfa-root", "reason": "root MFA needed" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.next_step();
    w.approve(&id, "ann", &w.ann).await.ok();
    b.open(&format!("{}/console/requests/{id}", console(t)));
    let r = b.click("#release");
    let page = text(&r);
    assert!(
        page.contains(&common::oathtool(common::MFA_SEED, t.clock_ms())),
        "{r}"
    );
    assert!(!page.contains(common::MFA_SEED), "never the seed: {r}");
    assert!(page.contains("valid for"), "{r}");
    b.shot("4-code-only");
    b.assert_no_csp_violation();
}

/// The approve form of `id`, submitted with `code`: the page it answers.
fn approve_in(b: &mut Browser, base: &str, id: &str, code: &str) -> Value {
    b.open(&format!("{base}/console/requests/{id}"));
    b.typed("#code", code);
    b.click("#approve")
}

async fn refusals_show_the_codes_message_and_change_nothing(backend: Backend) {
    let w = World::new(backend).await;
    let t = &w.t;
    let base = console(t);
    let mut b = Browser::start(&shots_dir("refusals", backend));

    // A requester who is also a custodian approves their own request.
    let own = t
        .post(
            "/v1/requests",
            &w.cat,
            json!({ "credential": "aws-prod-root", "reason": "mine", "ticket": "INC-1" }),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sign_in_with_link(&mut b, t, "cat", &[Role::Custodian, Role::Requester]).await;
    let before = t.audit().await.len();
    let r = approve_in(&mut b, &base, &own, &t.code("cat"));
    assert!(text(&r).contains("Refused"), "{r}");
    let refused = t.audit().await;
    let last = refused
        .iter()
        .skip(before)
        .find(|e| e.action == "request.approve")
        .expect("the refusal is audited");
    assert_eq!(last.outcome, "refused");
    let code = last.code.clone().unwrap();
    assert!(text(&r).contains(&code), "the code {code} is shown: {r}");
    assert_eq!(request_state(&w, &own).await["approvals"], 0);
    b.shot("self-approval");
    b.axe("a refusal");

    // Deny with veto: ann denies; bob's approval, from the page he had
    // open, is refused.
    let id = w.request().await;
    t.post(
        format!("/v1/requests/{id}/deny"),
        &w.ann,
        json!({ "code": t.code("ann"), "reason": "not an incident" }),
    )
    .await
    .ok();
    sign_out(&mut b);
    sign_in_with_link(&mut b, t, "bob", &[Role::Custodian]).await;
    let r = b.open(&format!("{base}/console/requests/{id}"));
    assert!(text(&r).contains("Denied"), "{r}");
    assert!(text(&r).contains("not an incident"), "{r}");
    let r = post_form(t, &id, "approve", &[("code", t.code("bob"))]).await;
    assert_eq!(r.0, 409, "{}", r.1);
    assert!(r.1.contains("request_denied"), "{}", r.1);
    assert_eq!(request_state(&w, &id).await["state"], "denied");

    // An expired request.
    let id = w.request().await;
    b.open(&format!("{base}/console/requests/{id}"));
    b.typed("#code", &t.code("bob"));
    t.advance_mins(61);
    let r = b.click("#approve");
    assert!(text(&r).contains("Refused"), "{r}");
    assert!(text(&r).contains("request_expired"), "{r}");
    assert_eq!(request_state(&w, &id).await["approvals"], 0);
    b.shot("expired");

    // A locked-out custodian: wrong codes until the lockout, then even the
    // right one is refused with the lockout's message.
    let id = w.request().await;
    for _ in 0..5 {
        approve_in(&mut b, &base, &id, &t.wrong_code("bob"));
    }
    let r = approve_in(&mut b, &base, &id, &t.code("bob"));
    assert!(text(&r).contains("custodian_locked"), "{r}");
    assert_eq!(request_state(&w, &id).await["approvals"], 0);
    b.shot("locked-out");
    b.assert_no_csp_violation();
}

fn sign_out(b: &mut Browser) {
    let r = b.click("form.signout button");
    assert!(
        r["url"].as_str().unwrap().contains("/console/signin"),
        "{r}"
    );
}

/// A form body, as a browser sends it.
trait FormOf {
    fn form_of<T: serde::Serialize + ?Sized>(self, fields: &T) -> Self;
}

impl FormOf for reqwest::RequestBuilder {
    fn form_of<T: serde::Serialize + ?Sized>(self, fields: &T) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
    }
}

/// A client that keeps no cookies and follows no redirects: what an
/// attacker's script or a link scanner is.
fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The cookie and form token of a fresh session of `who`, without a browser.
async fn session_of(t: &TestApp, who: &str, roles: &[Role]) -> (String, String) {
    let link = t
        .app
        .issue_sign_in_link("host-operator", who, roles)
        .await
        .unwrap();
    let res = raw()
        .post(format!("{}/console/signin/link", t.base))
        .header("sec-fetch-site", "same-origin")
        .form_of(&[("link", link.secret.reveal()), ("next", "/console/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-bg_session="), "{cookie}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = raw()
        .get(format!("{}/console/", t.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page carries a form token")
        .to_string();
    (cookie, token)
}

/// A same-origin POST of a request's form by bob, in a session of his own:
/// (status, body).
async fn post_form(
    t: &TestApp,
    id: &str,
    action: &str,
    fields: &[(&str, String)],
) -> (u16, String) {
    let (cookie, token) = session_of(t, "bob", &[Role::Custodian]).await;
    let mut form: Vec<(&str, String)> = fields.to_vec();
    form.push(("form_token", token));
    let res = raw()
        .post(format!("{}/console/requests/{id}/{action}", t.base))
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .form_of(&form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn a_cross_site_form_or_a_get_of_an_action_changes_nothing(backend: Backend) {
    let w = World::new(backend).await;
    let t = &w.t;
    let base = console(t);
    let id = w.request().await;
    let mut b = Browser::start(&shots_dir("cross-site", backend));
    sign_in_with_link(&mut b, t, "ann", &[Role::Custodian]).await;
    let page = b.open(&format!("{base}/console/requests/{id}"));
    assert!(text(&page).contains("Approve"));

    // An attacker's page submits the approve form with a valid code.
    let r = b.send(json!({
        "cmd": "forge",
        "action": format!("{base}/console/requests/{id}/approve"),
        "fields": { "code": t.code("ann") },
    }));
    assert!(text(&r).contains("cross_site_request"), "{r}");
    // A link scanner fetches the action's address.
    let r = b.open(&format!("{base}/console/requests/{id}/approve"));
    assert!(!text(&r).contains("Your approval is recorded"), "{r}");
    assert_eq!(request_state(&w, &id).await["approvals"], 0);
    b.assert_no_csp_violation();

    // Without a browser: the same form from another origin, without its
    // token, or with another session's token.
    let (cookie, token) = session_of(t, "ann", &[Role::Custodian]).await;
    let (_, other_token) = session_of(t, "bob", &[Role::Custodian]).await;
    let url = format!("{}/console/requests/{id}/approve", t.base);
    for (site, origin, tok, code) in [
        (
            Some("cross-site"),
            None,
            token.as_str(),
            "cross_site_request",
        ),
        (
            None,
            Some("http://evil.example"),
            token.as_str(),
            "cross_site_request",
        ),
        (None, None, token.as_str(), "cross_site_request"),
        (Some("same-origin"), None, "", "form_token_invalid"),
        (
            Some("same-origin"),
            None,
            other_token.as_str(),
            "form_token_invalid",
        ),
    ] {
        let mut req = raw().post(&url).header("cookie", &cookie);
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req
            .form_of(&[("code", t.code("ann")), ("form_token", tok.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{site:?} {origin:?}");
        let body = res.text().await.unwrap();
        assert!(body.contains(code), "{code}: {body}");
    }
    assert_eq!(request_state(&w, &id).await["approvals"], 0);

    // A link followed from another site arrives without the strict
    // cookie: it is bounced once through this origin, which sends it; the
    // same address typed or followed here goes to sign in.
    let page = format!("{}/console/requests/{id}", t.base);
    let res = raw()
        .get(&page)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"0;url=/console/requests/{id}\">"
        )),
        "{body}"
    );
    let res = raw()
        .get(&page)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/signin?next="));

    // Every console response: the policy, and nothing kept or leaked.
    let res = raw()
        .get(format!("{}/console/requests/{id}", t.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; img-src 'self' data:"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
}

async fn sessions_end_at_sign_out_idle_expiry_and_revocation(backend: Backend) {
    let w = World::new(backend).await;
    let t = &w.t;
    let home = format!("{}/console/", t.base);
    let get = |cookie: String| {
        let home = home.clone();
        async move {
            raw()
                .get(home)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Idle: 12 hours unused.
    let (cookie, _) = session_of(t, "ann", &[Role::Custodian]).await;
    assert_eq!(get(cookie.clone()).await, 200);
    t.advance_mins(12 * 60 + 1);
    assert_eq!(get(cookie.clone()).await, 303, "sent to sign in");

    // Absolute: 24 hours, however busy.
    let (cookie, _) = session_of(t, "ann", &[Role::Custodian]).await;
    for _ in 0..4 {
        t.advance_mins(6 * 60 - 1);
        assert_eq!(get(cookie.clone()).await, 200);
    }
    t.advance_mins(5);
    assert_eq!(get(cookie.clone()).await, 303);

    // Sign-out ends it on every replica.
    let (cookie, token) = session_of(t, "ann", &[Role::Custodian]).await;
    let res = raw()
        .post(format!("{}/console/signout", t.base))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .form_of(&[("form_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let other = t.successor(None).await;
    let status = raw()
        .get(format!("{}/console/", other.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 303);

    // An admin revokes a person's sessions.
    let (cookie, _) = session_of(t, "ann", &[Role::Custodian]).await;
    assert_eq!(get(cookie.clone()).await, 200);
    // (The clock has moved a day: fresh API tokens.)
    let admin = t.token("root-admin", &[Role::Admin]);
    let requester = t.token("oncall", &[Role::Requester]);
    let r = t
        .post("/v1/sessions/revoke", &admin, json!({ "subject": "ann" }))
        .await
        .ok();
    assert_eq!(r["sessions_ended"], 1);
    assert_eq!(get(cookie.clone()).await, 303);
    let r = t
        .post(
            "/v1/sessions/revoke",
            &requester,
            json!({ "subject": "ann" }),
        )
        .await;
    r.refused(403, "forbidden_role");
    let actions: Vec<String> = t.audit().await.into_iter().map(|e| e.action).collect();
    for a in ["session.open", "session.close", "session.revoke"] {
        assert!(actions.iter().any(|x| x == a), "{a} is audited");
    }
    other.stop().await;
}

async fn a_sign_in_link_signs_in_once(backend: Backend) {
    let w = World::new(backend).await;
    let t = &w.t;
    let link = t
        .app
        .issue_sign_in_link("host-operator", "ann", &[Role::Custodian])
        .await
        .unwrap();
    let use_link = |s: String| {
        let url = format!("{}/console/signin/link", t.base);
        async move {
            let res = raw()
                .post(url)
                .header("sec-fetch-site", "same-origin")
                .form_of(&[("link", s)])
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // Opening it (a link scanner, a chat unfurler) uses nothing.
    let page = raw()
        .get(format!(
            "{}/console/signin/link?s={}",
            t.base,
            link.secret.reveal()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(use_link(link.secret.reveal().into()).await.0, 303);
    let (status, body) = use_link(link.secret.reveal().into()).await;
    assert_eq!(status, 401);
    assert!(body.contains("link_used"), "{body}");
    // The host command mints one for the console's public address, and the
    // server takes it.
    let out = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args([
            "token",
            "issue",
            "--link",
            "--subject",
            "bob",
            "--role",
            "custodian",
        ])
        .arg("--data-dir")
        .arg(&t.data_dir)
        .args(["--database-url", &t.database_url])
        .env("BREAKGLASS_CONSOLE_PUBLIC_URL", "https://bg.example.com")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = printed
        .strip_prefix("https://bg.example.com/console/signin/link?s=")
        .unwrap_or_else(|| panic!("a link to the console's public address: {printed}"));
    assert_eq!(use_link(minted.to_string()).await.0, 303);
    let expired = t
        .app
        .issue_sign_in_link("host-operator", "ann", &[Role::Custodian])
        .await
        .unwrap();
    t.advance_mins(16);
    let (status, body) = use_link(expired.secret.reveal().into()).await;
    assert_eq!(status, 401);
    assert!(body.contains("link_expired"), "{body}");
    let (status, body) = use_link("x".repeat(43)).await;
    assert_eq!(status, 401);
    assert!(body.contains("link_unknown"), "{body}");
    // Each use and refusal is in the audit log, and the secret is not.
    let events = t.audit().await;
    let text =
        serde_json::to_string(&events.iter().map(|e| &e.details).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains(link.secret.reveal()));
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.action == "session.open" && e.outcome == "refused")
        .filter_map(|e| e.code.clone())
        .collect();
    assert_eq!(refused, ["link_used", "link_expired", "link_unknown"]);
}

const CLIENT_ID: &str = "breakglass-console";
const CLIENT_SECRET: &str = "console-client-secret-0f3a9";

/// A server that trusts `issuer`, with the console's client there.
fn trusting(issuer: &str) -> impl Fn(&mut Config) {
    let iss = issuer.to_string();
    move |c: &mut Config| {
        c.oidc = vec![breakglass::oidc::OidcConfig {
            client: Some(breakglass::oidc::OidcClient {
                id: CLIENT_ID.into(),
                secret: Some(Arc::new(zeroize::Zeroizing::new(
                    CLIENT_SECRET.as_bytes().to_vec(),
                ))),
            }),
            issuer: iss.clone(),
            audience: "breakglass".into(),
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            subject_claim: "sub".into(),
            roles_claim: "groups".into(),
            roles: [(Role::Custodian, vec!["bg-custodians".to_string()])]
                .into_iter()
                .collect(),
            custodian_groups: Default::default(),
            timeout: std::time::Duration::from_secs(2),
            min_refresh: std::time::Duration::ZERO,
        }];
    }
}

async fn oidc_sign_in_with_pkce_and_the_local_fallback_with_the_provider_down(backend: Backend) {
    let mut p = Some(Provider::start());
    let issuer = p.as_ref().unwrap().url.clone();
    let w = World::with(TestApp::start_configured(backend, &trusting(&issuer)).await).await;
    let t = &w.t;
    let base = console(t);
    let provider = p.as_ref().unwrap();
    provider
        .client(
            CLIENT_ID,
            Some(CLIENT_SECRET),
            &[format!("{base}/console/signin/oidc/callback")],
        )
        .await;
    provider.login_as(t, "ann", &["bg-custodians"]).await;
    let id = w.request().await;

    // The browser: the request's page sends ann to sign in; the provider
    // signs her in and she lands back on the request.
    let mut b = Browser::start(&shots_dir("oidc", backend));
    let r = b.open(&format!("{base}/console/requests/{id}"));
    assert!(text(&r).contains(&format!("Sign in with {issuer}")), "{r}");
    b.shot("1-sign-in");
    let r = b.click("a.provider");
    assert!(
        r["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/console/requests/{id}")),
        "{r}"
    );
    assert!(
        text(&r).contains("ann") && text(&r).contains("prod is down"),
        "{r}"
    );
    b.shot("2-signed-in");
    let opened: Vec<_> = t
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "session.open" && e.outcome == "success")
        .collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].details["method"], "oidc");
    assert_eq!(opened[0].details["issuer"], issuer.as_str());

    // Without a browser: the return taken without the cookie of the
    // browser that started it is refused, and a return is taken once.
    let start = raw()
        .get(
            reqwest::Url::parse_with_params(
                &format!("{base}/console/signin/oidc"),
                &[("issuer", issuer.as_str()), ("next", "/console/")],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let login_cookie = start.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(login_cookie.starts_with("__Host-bg_login=") && login_cookie.contains("SameSite=Lax"));
    let login_cookie = login_cookie.split(';').next().unwrap().to_string();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "client_id=breakglass-console",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let back = raw().get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let res = raw().get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("sign_in_other_browser"));
    let with_cookie = || raw().get(&callback).header("cookie", &login_cookie).send();
    let res = with_cookie().await.unwrap();
    assert_eq!(res.status(), 303, "the browser that began it signs in");
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("__Host-bg_session="));
    let res = with_cookie().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.text().await.unwrap().contains("sign_in_unknown"),
        "a return is used once"
    );

    // The provider goes down: its button says so, and the local fallback
    // (a token pasted once) signs in.
    drop(p.take());
    sign_out(&mut b);
    let r = b.click("a.provider");
    assert!(text(&r).contains("token_issuer_unreachable"), "{r}");
    assert!(text(&r).contains("local token"), "{r}");
    b.shot("3-provider-down");
    let r = b.open(&format!(
        "{base}/console/signin?next=/console/requests/{id}"
    ));
    assert!(text(&r).contains("With a local token"), "{r}");
    b.typed("#token", &w.ann);
    let r = b.click("#token-signin");
    assert!(text(&r).contains("prod is down"), "{r}");
    let fallback = t
        .audit()
        .await
        .into_iter()
        .rev()
        .find(|e| e.action == "session.open" && e.outcome == "success")
        .unwrap();
    assert_eq!(fallback.details["method"], "token");
    b.assert_no_csp_violation();
}

async fn breakglass_login_keeps_an_owner_only_token_the_other_commands_use(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let p = Provider::start();
    let t = TestApp::start_configured(backend, &trusting(&p.url)).await;
    // The command's client: a public one (PKCE alone) whose tokens carry
    // the service's audience, redirecting to a loopback port of its choice.
    p.client(
        "breakglass",
        None,
        &["http://127.0.0.1/callback".to_string()],
    )
    .await;
    p.login_as(&t, "ann", &["bg-custodians"]).await;
    let home = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_breakglass");
    let mut child = Command::new(bin)
        .args(["login", "--issuer", &p.url, "--client-id", "breakglass"])
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("BREAKGLASS_TOKEN")
        .env_remove("BREAKGLASS_TOKEN_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "login printed no address"
        );
        if let Some(u) = line.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    // The person's browser: the provider signs them in and sends them back
    // to the command's loopback address.
    let back = raw().get(&url).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    let page = raw().get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr).to_string();
    assert!(status.status.success(), "{stderr}");
    assert!(stderr.contains("signed in as ann"), "{stderr}");
    let file = home.path().join("breakglass/token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let whoami = |home: &std::path::Path| {
        Command::new(bin)
            .args(["--server", &t.base, "--json", "whoami"])
            .env("XDG_CONFIG_HOME", home)
            .env_remove("BREAKGLASS_TOKEN")
            .env_remove("BREAKGLASS_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let out = whoami(home.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["subject"], "ann");
    assert!(me["token_id"].as_str().unwrap().starts_with(&p.url), "{me}");

    // A token file others can read is refused, and says how to fix it.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = whoami(home.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token") && err.contains("chmod"), "{err}");
    t.stop().await;
}

async fn custodians_enrol_auditors_audit_admins_administer_in_the_browser(backend: Backend) {
    let w = World::new(backend).await;
    let t = &w.t;
    let base = console(t);
    t.post(
        "/v1/custodians",
        &w.admin,
        json!({ "name": "dan", "groups": ["sre"] }),
    )
    .await
    .ok();
    let id = w.request().await;
    let mut b = Browser::start(&shots_dir("roles", backend));

    // A custodian enrols their authenticator: the QR code, then a first code.
    sign_in_with_link(&mut b, t, "dan", &[Role::Custodian]).await;
    let r = b.open(&format!("{base}/console/enroll"));
    assert!(text(&r).contains("new"), "{r}");
    b.axe("the authenticator page");
    let r = b.click("#enroll");
    assert!(text(&r).contains("Scan this code"), "{r}");
    let qr = b.send(json!({ "cmd": "attr", "css": ".qr img", "name": "src" }));
    assert!(
        qr["value"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,"),
        "{qr}"
    );
    b.shot("1-enrol");
    b.axe("the enrolment");
    let secret = b.send(json!({ "cmd": "attr", "css": "code.secret", "name": "textContent" }));
    let secret = secret["value"].as_str().unwrap().trim().to_string();
    let code = common::oathtool(&secret, t.clock_ms());
    b.typed("#code", &code);
    let r = b.click("#confirm");
    assert!(text(&r).contains("Your authenticator is confirmed"), "{r}");
    assert!(text(&r).contains("active"), "{r}");
    let dan = t
        .get("/v1/custodians", &w.admin)
        .await
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dan")
        .cloned()
        .unwrap();
    assert_eq!(dan["status"], "active");
    sign_out(&mut b);

    // An auditor: the log, filtered and paged, its verdict, the review.
    sign_in_with_link(&mut b, t, "audrey", &[Role::Auditor]).await;
    let r = b.open(&format!("{base}/console/audit?limit=5"));
    assert!(text(&r).contains("#1 "), "{r}");
    b.axe("the audit log");
    b.shot("2-audit");
    let r = b.click("#next-page");
    assert!(
        !text(&r).contains("#1 ") && text(&r).contains("#6 "),
        "the next page: {r}"
    );
    b.typed("#f-action", "request.create");
    let r = b.click("#filter");
    assert!(text(&r).contains("request.create"), "{r}");
    assert!(!text(&r).contains("custodian.add"), "{r}");
    let r = b.click("#verify");
    assert!(text(&r).contains("Intact"), "{r}");
    b.axe("the verdict");
    let r = b.open(&format!("{base}/console/hygiene"));
    assert!(
        text(&r).contains("high") && text(&r).contains("medium"),
        "{r}"
    );
    b.axe("the hygiene report");
    let (cookie, _) = session_of(t, "audrey", &[Role::Auditor]).await;
    let res = raw()
        .get(format!("{}/console/audit/export?format=jsonl", t.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let body = res.text().await.unwrap();
    let header: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
    assert_eq!(header["record"], "header");
    sign_out(&mut b);

    // An admin: custodians, credentials, policies; ends a person's sessions.
    let (ann_cookie, _) = session_of(t, "ann", &[Role::Custodian]).await;
    sign_in_with_link(&mut b, t, "root-admin", &[Role::Admin]).await;
    let r = b.open(&format!("{base}/console/admin"));
    for s in [
        "dan",
        "aws-prod-root",
        "default",
        "2 of sre AND 1 of security",
    ] {
        assert!(text(&r).contains(s), "{s}: {r}");
    }
    b.axe("the admin page");
    b.shot("3-admin");
    b.typed("#subject", "ann");
    let r = b.click("#revoke");
    assert!(
        text(&r).contains("1 console session(s) of ann ended"),
        "{r}"
    );
    let status = raw()
        .get(format!("{}/console/requests/{id}", t.base))
        .header("cookie", ann_cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 303, "ann is sent to sign in again");
    b.assert_no_csp_violation();
}

fn with_keys(c: &mut Config) {
    c.settings.console.public_url = Some(PUBLIC_URL_OF_THIS_SERVER.into());
}

/// Register a key in the browser's virtual authenticator, through the
/// keys page (a first key: with the TOTP code).
fn register_key_in(b: &mut Browser, t: &TestApp, who: &str, name: &str) {
    let r = b.open(&format!("{}/console/keys", console(t)));
    assert!(text(&r).contains("no security key yet"), "{r}");
    b.axe("the keys page");
    b.typed("#key-name", name);
    b.typed("#code", &t.code(who));
    let r = b.click("#add-key");
    assert!(text(&r).contains("Register the new key"), "{r}");
    b.axe("the registration ceremony");
    let r = b.click("#use-key");
    assert!(
        text(&r).contains(&format!("Your key {name} is registered")),
        "{r}"
    );
}

async fn a_custodian_registers_a_key_and_approves_with_it_on_a_phone(backend: Backend) {
    let w = World::with(TestApp::start_configured(backend, &with_keys).await).await;
    let t = &w.t;
    let mut b = Browser::start(&shots_dir("security-key", backend));
    sign_in_with_link(&mut b, t, "ann", &[Role::Custodian]).await;
    b.send(json!({ "cmd": "authenticator" }));
    register_key_in(&mut b, t, "ann", "phone");
    b.shot("1-key-registered");

    let id = w.request().await;
    // From the terminal: `approve --webauthn` prints the request's page,
    // waits, and reports the outcome.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(["approve", &id, "--webauthn", "--no-open"])
        .env("BREAKGLASS_SERVER", &t.base)
        .env("BREAKGLASS_TOKEN", &w.ann)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(cli.stdout.take().unwrap());
    let mut link = String::new();
    out.read_line(&mut link).unwrap();
    let link = link.trim().to_string();
    assert_eq!(link, format!("{}/console/requests/{id}", console(t)));
    let r = b.open(&link);
    assert!(text(&r).contains("Approve with a security key"), "{r}");
    let r = b.click("#approve-key");
    assert!(text(&r).contains("Approve with your security key"), "{r}");
    b.shot("2-approve-ceremony");
    b.axe("the approval ceremony");
    let r = b.click("#use-key");
    let page = text(&r);
    assert!(page.contains("signed by your security key"), "{r}");
    assert!(page.contains("1 of 3 approvals"), "{r}");
    b.shot("3-approved-with-key");
    let status = cli.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut out, &mut said).unwrap();
    assert!(status.success(), "{said}");
    assert!(
        said.contains("approved with your security key: 1 of 3 approvals"),
        "{said}"
    );
    let v = request_state(&w, &id).await;
    assert_eq!(v["decisions"][0]["presence"], "webauthn");
    let ev = t
        .audit()
        .await
        .into_iter()
        .find(|e| e.action == "request.approve" && e.outcome == "success")
        .unwrap();
    assert_eq!(ev.details["presence"], "webauthn");
    assert!(ev.details["webauthn"]["signature"].is_string());
    // The rest of the quorum with codes; the release proves ann's key.
    w.approve(&id, "bob", &w.bob).await.ok();
    w.approve(&id, "sec", &w.sec).await.ok();
    t.next_step();
    let out = t
        .post(
            format!("/v1/requests/{id}/release"),
            &w.requester,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(out["fields"]["password"], PASSWORD);
    b.assert_no_csp_violation();
}

async fn an_answer_without_user_verification_or_replayed_is_refused(backend: Backend) {
    let w = World::with(TestApp::start_configured(backend, &with_keys).await).await;
    let t = &w.t;
    let base = console(t);
    let mut b = Browser::start(&shots_dir("security-key-refusals", backend));
    sign_in_with_link(&mut b, t, "ann", &[Role::Custodian]).await;
    b.send(json!({ "cmd": "authenticator" }));
    register_key_in(&mut b, t, "ann", "phone");
    let first = w.request().await;
    let second = w.request().await;

    // The key cannot verify its user: the browser refuses to sign, and
    // nothing is approved.
    b.send(json!({ "cmd": "verified", "value": false }));
    b.open(&format!("{base}/console/requests/{first}"));
    b.click("#approve-key");
    b.send(json!({ "cmd": "click", "css": "#use-key", "navigates": false }));
    let r = b.send(json!({ "cmd": "wait_text", "text": "did not answer" }));
    assert!(text(&r).contains("NotAllowedError"), "{r}");
    b.shot("1-not-verified");
    assert_eq!(request_state(&w, &first).await["approvals"], 0);
    b.send(json!({ "cmd": "verified", "value": true }));

    // An answer kept aside (as an eavesdropper on the page would) ...
    b.open(&format!("{base}/console/requests/{first}"));
    b.click("#approve-key");
    let field = |b: &mut Browser, name: &str| -> String {
        b.send(json!({ "cmd": "attr", "css": format!("input[name={name}]"), "name": "value" }))
            ["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let token = field(&mut b, "form_token");
    let ceremony = field(&mut b, "ceremony");
    let answer = b.send(json!({ "cmd": "capture" }))["value"]
        .as_str()
        .unwrap()
        .to_string();
    let post =
        |b: &mut Browser, path: String, ceremony: &str, reason: Option<&str>| -> (u64, String) {
            let mut fields =
                json!({ "form_token": token, "ceremony": ceremony, "credential": answer });
            if let Some(r) = reason {
                fields["reason"] = json!(r);
            }
            let r =
                b.send(json!({ "cmd": "post", "url": format!("{base}{path}"), "fields": fields }));
            (
                r["status"].as_u64().unwrap(),
                r["body"].as_str().unwrap().to_string(),
            )
        };
    // ... is accepted once, for its ceremony ...
    let (status, body) = post(
        &mut b,
        format!("/console/requests/{first}/key/approve"),
        &ceremony,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("signed by your security key"), "{body}");
    // ... and never again: not for the same ceremony,
    let (status, body) = post(
        &mut b,
        format!("/console/requests/{first}/key/approve"),
        &ceremony,
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("ceremony_used"), "{body}");
    // not for another request's ceremony,
    b.open(&format!("{base}/console/requests/{second}"));
    b.click("#approve-key");
    let other = field(&mut b, "ceremony");
    let (status, body) = post(
        &mut b,
        format!("/console/requests/{second}/key/approve"),
        &other,
        None,
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("assertion_not_bound"), "{body}");
    // and not for the other decision.
    b.open(&format!("{base}/console/requests/{second}"));
    b.send(json!({ "cmd": "click", "css": "summary", "navigates": false }));
    b.typed("#deny-key-reason", "not this one");
    b.click("#deny-key");
    let deny = field(&mut b, "ceremony");
    let (status, body) = post(
        &mut b,
        format!("/console/requests/{second}/key/deny"),
        &deny,
        Some("not this one"),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("assertion_not_bound"), "{body}");
    let v = request_state(&w, &second).await;
    assert_eq!(v["decisions"], json!([]));
    assert_eq!(request_state(&w, &first).await["approvals"], 1);
    b.assert_no_csp_violation();
}

async fn a_custodian_with_no_key_left_gets_a_new_one_with_the_quorum(backend: Backend) {
    let w = World::with(TestApp::start_configured(backend, &with_keys).await).await;
    let t = &w.t;
    let base = console(t);
    let mut b = Browser::start(&shots_dir("key-reset", backend));
    sign_in_with_link(&mut b, t, "ann", &[Role::Custodian]).await;
    b.send(json!({ "cmd": "authenticator" }));
    register_key_in(&mut b, t, "ann", "phone");
    // The phone is lost: ann removes its key, and asks for a new one.
    let r = b.click("#remove-1");
    assert!(text(&r).contains("never signs again"), "{r}");
    assert!(text(&r).contains("needs the quorum's approval"), "{r}");
    b.typed("#reset-reason", "phone lost on the train");
    let r = b.click("#ask-reset");
    assert!(text(&r).contains("Your key reset is proposed"), "{r}");
    b.shot("1-reset-asked");
    b.axe("the keys page, reset asked");
    sign_out(&mut b);
    // Bob sees it on his home page and approves it with his code.
    sign_in_with_link(&mut b, t, "bob", &[Role::Custodian]).await;
    let r = b.open(&format!("{base}/console/"));
    assert!(text(&r).contains("A new security key for ann"), "{r}");
    assert!(text(&r).contains("phone lost on the train"), "{r}");
    b.shot("2-reset-awaiting-bob");
    b.axe("the home page with a key reset");
    b.typed("#reset-code-1", &t.code("bob"));
    let r = b.click("#approve-reset-1");
    assert!(
        text(&r).contains("Your decision on ann's new key is recorded"),
        "{r}"
    );
    sign_out(&mut b);
    // Cat and security approve over the API.
    let resets = t.get("/v1/key-resets", &w.auditor).await.ok();
    let rid = resets[0]["id"].as_str().unwrap().to_string();
    for (who, token) in [("cat", &w.cat), ("sec", &w.sec)] {
        t.post(
            format!("/v1/key-resets/{rid}/approve"),
            token,
            json!({ "code": t.code(who) }),
        )
        .await
        .ok();
    }
    // Ann registers the new key (a new phone) with her code.
    t.next_step();
    sign_in_with_link(&mut b, t, "ann", &[Role::Custodian]).await;
    b.send(json!({ "cmd": "authenticator", "replace": true }));
    let r = b.open(&format!("{base}/console/keys"));
    assert!(text(&r).contains("Your key reset is approved"), "{r}");
    b.typed("#key-name", "new-phone");
    b.typed("#code", &t.code("ann"));
    let r = b.click("#add-key");
    assert!(text(&r).contains("Register the new key"), "{r}");
    let r = b.click("#use-key");
    assert!(text(&r).contains("Your key new-phone is registered"), "{r}");
    b.shot("3-new-key");
    b.assert_no_csp_violation();
}
