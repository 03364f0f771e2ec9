//! The edge under hostile or clumsy clients: every limit answers with its
//! own code and changes nothing; TLS end to end with a certificate the test
//! makes (and replaces while the server runs); plain HTTP refused off
//! loopback; security headers and a request id on every response, carried
//! into the audit log and the JSON logs; `/metrics` after a break-glass.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use breakglass::config::Config;
use breakglass::domain::Role;
use common::{Backend, TestApp, World};
use serde_json::{json, Value};

async fn raw(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_body_too_large_and_changes_nothing() {
    let t = TestApp::start_configured(Backend::Sqlite, &|c: &mut Config| {
        c.settings.limits.max_body_bytes = 4096;
    })
    .await;
    let admin = t.token("root-admin", &[Role::Admin]);
    let big = "x".repeat(8192);
    let (status, headers, body) = raw(reqwest::Client::new()
        .post(format!("{}/v1/custodians", t.base))
        .bearer_auth(&admin)
        .json(&json!({ "name": "ann", "groups": ["sre"], "pad": big })))
    .await;
    assert_eq!((status, code(&body)), (413, "body_too_large"), "{body}");
    assert!(headers.contains_key("x-request-id"));
    let list = t.get("/v1/custodians", &admin).await.ok();
    assert_eq!(list, json!([]), "nothing was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_over_the_limit_are_refused_with_headers_too_large() {
    let t = TestApp::start_configured(Backend::Sqlite, &|c: &mut Config| {
        c.settings.limits.max_header_bytes = 4096;
    })
    .await;
    let (status, headers, body) = raw(reqwest::Client::new()
        .get(format!("{}/healthz", t.base))
        .header("x-padding", "p".repeat(6000)))
    .await;
    assert_eq!((status, code(&body)), (431, "headers_too_large"), "{body}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // Under the limit, the same request passes.
    let (status, _, _) = raw(reqwest::Client::new()
        .get(format!("{}/healthz", t.base))
        .header("x-padding", "p".repeat(1000)))
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_rate_is_refused_with_rate_limited_address_and_retry_after() {
    let t = TestApp::start_configured(Backend::Sqlite, &|c: &mut Config| {
        c.settings.limits.requests_per_minute_per_address = 5;
    })
    .await;
    let client = reqwest::Client::new();
    let mut answers = vec![];
    for _ in 0..6 {
        let (status, headers, body) = raw(client.get(format!("{}/healthz", t.base))).await;
        answers.push((status, code(&body).to_owned(), headers));
    }
    assert!(answers[..5].iter().all(|(s, _, _)| *s == 200));
    let (status, c, headers) = &answers[5];
    assert_eq!((*status, c.as_str()), (429, "rate_limited_address"));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_over_its_rate_is_refused_with_rate_limited_identity_and_others_go_on() {
    let t = TestApp::start_configured(Backend::Sqlite, &|c: &mut Config| {
        c.settings.limits.requests_per_minute_per_identity = 3;
    })
    .await;
    let busy = t.token("busy-auditor", &[Role::Auditor]);
    let other = t.token("other-auditor", &[Role::Auditor]);
    for _ in 0..3 {
        t.get("/v1/whoami", &busy).await.ok();
    }
    let r = t.get("/v1/whoami", &busy).await;
    r.refused(429, "rate_limited_identity");
    t.get("/v1/whoami", &other).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_attempts_over_the_limit_are_refused_with_totp_rate_limited_audited_and_change_nothing(
) {
    let t = TestApp::start_configured(Backend::Sqlite, &|c: &mut Config| {
        c.settings.limits.totp_attempts_per_minute = 2;
    })
    .await;
    let w = World::with(t).await;
    let id = w.request().await;
    // Enrolment spent one attempt of each custodian already (the buckets
    // run on the real clock), so ann has one left this minute.
    let mut seen = vec![];
    for _ in 0..3 {
        let wrong = w.t.wrong_code("ann");
        let r =
            w.t.post(
                format!("/v1/requests/{id}/approve"),
                &w.ann,
                json!({ "code": wrong }),
            )
            .await;
        seen.push(r.code().to_owned());
        if r.code() == "totp_rate_limited" {
            break;
        }
    }
    assert_eq!(seen.last().unwrap(), "totp_rate_limited", "{seen:?}");
    // Now a right code is refused too, and nothing changes but the audit.
    let right = w.t.code("ann");
    w.t.assert_refused_and_unchanged(Some(&id), 429, "totp_rate_limited", || {
        w.t.post(
            format!("/v1/requests/{id}/approve"),
            &w.ann,
            json!({ "code": right }),
        )
    })
    .await;
    // Another custodian is not held back by ann's bucket.
    w.approve(&id, "bob", &w.bob).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_attempts_from_one_address_over_its_limit_are_refused_whoever_they_are_for() {
    let t = TestApp::start_configured(Backend::Sqlite, &|c: &mut Config| {
        c.settings.limits.totp_attempts_per_minute_per_address = 6;
    })
    .await;
    // Four enrolments spend four of the address's six.
    let w = World::with(t).await;
    let id = w.request().await;
    w.approve(&id, "ann", &w.ann).await.ok();
    let wrong = w.t.wrong_code("bob");
    w.t.post(
        format!("/v1/requests/{id}/approve"),
        &w.bob,
        json!({ "code": wrong }),
    )
    .await
    .refused(401, "invalid_totp");
    let right = w.t.code("sec");
    w.t.assert_refused_and_unchanged(Some(&id), 429, "totp_rate_limited", || {
        w.t.post(
            format!("/v1/requests/{id}/approve"),
            &w.sec,
            json!({ "code": right }),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_is_abandoned_with_request_timeout() {
    // An OIDC issuer that accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let iss = issuer.clone();
    let t = TestApp::start_configured(Backend::Sqlite, &move |c: &mut Config| {
        c.settings.limits.request_timeout = Duration::from_millis(500);
        c.oidc = vec![breakglass::oidc::OidcConfig {
            client: None,
            issuer: iss.clone(),
            audience: "breakglass".into(),
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            subject_claim: "sub".into(),
            roles_claim: "groups".into(),
            roles: Default::default(),
            custodian_groups: Default::default(),
            timeout: Duration::from_secs(60),
            min_refresh: Duration::ZERO,
        }];
    })
    .await;
    use base64::Engine;
    let b64 = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let now = t.now_secs();
    let token = format!(
        "{}.{}.{}",
        b64(json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" })),
        b64(
            json!({ "iss": issuer, "aud": "breakglass", "sub": "x", "iat": now, "exp": now + 600 })
        ),
        "c2lnbmF0dXJl"
    );
    let r = t.get("/v1/whoami", &token).await;
    r.refused(503, "request_timeout");
    // The service goes on answering.
    assert_eq!(t.call("GET", "/healthz", None, None).await.status, 200);
}

async fn database_busy(b: Backend) {
    let t = TestApp::start_configured(b, &|c: &mut Config| {
        c.pool.max_connections = Some(1);
        c.pool.acquire_timeout = Duration::from_millis(300);
    })
    .await;
    let admin = t.token("root-admin", &[Role::Admin]);
    t.get("/v1/custodians", &admin).await.ok();
    // Hold the pool's only connection.
    let held = t.app.store.begin().await.unwrap();
    let r = t
        .post(
            "/v1/custodians",
            &admin,
            json!({ "name": "ann", "groups": ["sre"] }),
        )
        .await;
    r.refused(503, "database_busy");
    held.rollback().await.unwrap();
    assert_eq!(t.get("/v1/custodians", &admin).await.ok(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers_and_a_request_id_that_reaches_the_audit_log() {
    let t = TestApp::start(Backend::Sqlite).await;
    let admin = t.token("root-admin", &[Role::Admin]);
    let client = reqwest::Client::new();
    for req in [
        client.get(format!("{}/healthz", t.base)),
        client.get(format!("{}/no/such/path", t.base)),
        client.get(format!("{}/v1/whoami", t.base)),
        client.get(format!("{}/openapi.json", t.base)),
    ] {
        let (_, h, _) = raw(req).await;
        for (name, value) in [
            (
                "strict-transport-security",
                "max-age=31536000; includeSubDomains",
            ),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                h.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{name}"
            );
        }
        assert!(h.contains_key("x-request-id"));
    }
    // A caller's request id is echoed and written into the events it causes.
    let (status, h, _) = raw(client
        .post(format!("{}/v1/custodians", t.base))
        .bearer_auth(&admin)
        .header("x-request-id", "change-4711.a_b")
        .json(&json!({ "name": "ann", "groups": ["sre"] })))
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["x-request-id"], "change-4711.a_b");
    let events = t.audit().await;
    let added = events.iter().find(|e| e.action == "custodian.add").unwrap();
    assert_eq!(added.details["request_id"], "change-4711.a_b");
    // An id we cannot carry safely is replaced by one of ours.
    let (_, h, _) = raw(client
        .get(format!("{}/healthz", t.base))
        .header("x-request-id", "bad id; drop table"))
    .await;
    let id = h["x-request-id"].to_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
}

/// The OpenMetrics text parsed by the Prometheus project's own parser:
/// (name, labels, value) of every sample.
fn parse_metrics(text: &str) -> Vec<(String, Value, f64)> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (scripts/test installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse:\n{text}"
    );
    let v: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    v
}

fn sample(samples: &[(String, Value, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(t: &TestApp) -> Vec<(String, Value, f64)> {
    let r = reqwest::get(format!("{}/metrics", t.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    parse_metrics(&r.text().await.unwrap())
}

async fn metrics_move_after_a_break_glass(b: Backend) {
    let w = World::new(b).await;
    let before = scrape(&w.t).await;
    let id = w.approved_request().await;
    // A wrong code, counted as a 401 on the approve route.
    let pending = w.request().await;
    let wrong = w.t.wrong_code("ann");
    w.t.post(
        format!("/v1/requests/{pending}/approve"),
        &w.ann,
        json!({ "code": wrong }),
    )
    .await
    .refused(401, "invalid_totp");
    w.t.post(
        format!("/v1/requests/{id}/release"),
        &w.requester,
        json!({}),
    )
    .await
    .ok();
    let verdict =
        w.t.post("/v1/audit/verify", &w.auditor, json!({}))
            .await
            .ok();
    assert_eq!(verdict["ok"], true);
    let after = scrape(&w.t).await;

    let released = "breakglass_released_requests";
    assert_eq!(sample(&before, released, &[]), 0.0);
    assert_eq!(sample(&after, released, &[]), 1.0);
    let by_state = "breakglass_requests";
    assert_eq!(sample(&after, by_state, &[("state", "released")]), 1.0);
    assert_eq!(sample(&after, by_state, &[("state", "pending")]), 1.0);
    assert_eq!(sample(&after, by_state, &[("state", "denied")]), 0.0);
    let http = "breakglass_http_requests_total";
    let release_route = [("route", "/v1/requests/{id}/release"), ("method", "POST")];
    assert_eq!(sample(&before, http, &release_route), 0.0);
    assert_eq!(
        sample(
            &after,
            http,
            &[release_route[0], release_route[1], ("status", "200")]
        ),
        1.0
    );
    let approve_401 = [("route", "/v1/requests/{id}/approve"), ("status", "401")];
    assert_eq!(sample(&after, http, &approve_401), 1.0);
    let count = "breakglass_http_request_duration_seconds_count";
    assert!(sample(&after, count, &release_route) >= 1.0);
    assert!(
        sample(&after, "breakglass_audit_chain_length", &[])
            > sample(&before, "breakglass_audit_chain_length", &[])
    );
    assert_eq!(
        sample(&after, "breakglass_audit_last_verification_ok", &[]),
        1.0
    );
    assert!(sample(&after, "breakglass_audit_last_verification_head_seq", &[]) > 0.0);
    assert_eq!(sample(&after, "breakglass_custodians_locked_out", &[]), 0.0);
}

async fn metrics_count_lockouts(b: Backend) {
    let t = TestApp::start_configured(b, &|c: &mut Config| {
        c.settings.totp_max_failures = 2;
    })
    .await;
    let w = World::with(t).await;
    let id = w.request().await;
    for _ in 0..2 {
        let wrong = w.t.wrong_code("ann");
        w.t.post(
            format!("/v1/requests/{id}/approve"),
            &w.ann,
            json!({ "code": wrong }),
        )
        .await;
    }
    let m = scrape(&w.t).await;
    assert_eq!(sample(&m, "breakglass_custodians_locked_out", &[]), 1.0);
    assert_eq!(sample(&m, "breakglass_totp_lockouts_total", &[]), 1.0);
}

both_backends!(
    database_busy,
    metrics_move_after_a_break_glass,
    metrics_count_lockouts
);

// ---- The binary: transport and logs.

struct Server {
    child: Child,
    url: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn policies_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("policies");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.toml"),
        p.join("default.toml"),
    )
    .unwrap();
    p
}

/// Start `breakglass serve` with `args`; return once it says where it
/// listens.
fn serve(dir: &std::path::Path, args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--policies-dir")
        .arg(policies_dir(dir))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("breakglass listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server {
        child,
        url,
        stderr: rx,
    }
}

#[test]
fn plain_http_on_an_address_other_than_loopback_is_refused_at_start_unless_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_breakglass"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--policies-dir")
        .arg(policies_dir(dir.path()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing plain HTTP on 0.0.0.0:0") && err.contains("tls.cert_file"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created before the refusal"
    );
    // Enabled explicitly, it starts.
    let s = serve(dir.path(), &["--listen", "0.0.0.0:0", "--allow-plain-http"]);
    assert!(s.url.starts_with("http://0.0.0.0:"), "{}", s.url);
}

/// A CA and a leaf certificate for 127.0.0.1 signed by it, made with the
/// openssl command-line tool. Returns (ca.pem, leaf cert, leaf key).
fn make_certs(
    dir: &std::path::Path,
    name: &str,
) -> (Vec<u8>, std::path::PathBuf, std::path::PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&p("ca.key")),
        "-out",
        &s(&p("ca.pem")),
        "-days",
        "2",
        "-subj",
        &format!("/CN=breakglass test CA {name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&p("leaf.key")),
        "-out",
        &s(&p("leaf.csr")),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&p("leaf.csr")),
        "-CA",
        &s(&p("ca.pem")),
        "-CAkey",
        &s(&p("ca.key")),
        "-CAcreateserial",
        "-out",
        &s(&p("leaf.pem")),
        "-days",
        "2",
        "-extfile",
        &s(&p("ext.cnf")),
    ]);
    (
        std::fs::read(p("ca.pem")).unwrap(),
        p("leaf.pem"),
        p("leaf.key"),
    )
}

fn client_trusting(ca: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca).unwrap()])
        .tls_info(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_end_to_end_and_a_replaced_certificate_is_loaded_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, leaf1, key1) = make_certs(dir.path(), "one");
    let (ca2, leaf2, key2) = make_certs(dir.path(), "two");
    let cert = dir.path().join("tls.pem");
    let key = dir.path().join("tls.key");
    std::fs::copy(&leaf1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let config = dir.path().join("breakglass.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\nreload_interval = \"200ms\"\n"
        ),
    )
    .unwrap();
    let s = serve(dir.path(), &["--config", config.to_str().unwrap()]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);

    let r = client_trusting(&ca1)
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::get(s.url.replace("https://", "http://")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // A client that trusts only the second CA is refused, until the files
    // are replaced.
    assert!(client_trusting(&ca2)
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .is_err());
    // Replace the key first, then the certificate: the half-written pair in
    // between does not load, and the old one stays in service.
    std::fs::copy(&key2, &key).unwrap();
    std::fs::copy(&leaf2, &cert).unwrap();
    let mut served = None;
    for _ in 0..100 {
        if let Ok(r) = client_trusting(&ca2)
            .get(format!("{}/healthz", s.url))
            .send()
            .await
        {
            served = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = served.expect("the new certificate was never served");
    assert_eq!(r.status(), 200);
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    let leaf2_der = {
        let pem = std::fs::read_to_string(&leaf2).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    assert_eq!(info.peer_certificate(), Some(&leaf2_der[..]));
    // And the old certificate is no longer served.
    assert!(client_trusting(&ca1)
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .is_err());
}

#[test]
fn json_logs_carry_the_request_id_and_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--log-format", "json"],
    );
    let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";
    let status = std::thread::scope(|_| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}/v1/whoami", s.url))
                .bearer_auth(token)
                .header("x-request-id", "trace-json-1")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    assert_eq!(status, 401);
    let mut found = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut lines = vec![];
    while found.is_none() && std::time::Instant::now() < deadline {
        if let Ok(line) = s.stderr.recv_timeout(Duration::from_millis(200)) {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
            if v["fields"]["request_id"] == "trace-json-1" && v["fields"]["message"] == "request" {
                found = Some(v);
            }
            lines.push(line);
        }
    }
    let v = found.unwrap_or_else(|| panic!("no request line with the id in {lines:#?}"));
    assert_eq!(v["fields"]["status"], 401);
    assert_eq!(v["fields"]["route"], "/v1/whoami");
    for line in &lines {
        assert!(
            !line.contains("c2VjcmV0LXNpZ25hdHVyZQ"),
            "a token in the logs: {line}"
        );
    }
}
