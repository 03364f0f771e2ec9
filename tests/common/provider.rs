//! The tests' own OpenID Connect provider (tests/oidc/provider.py): a
//! separate process, an independent implementation (PyJWT).

use std::process::{Child, Command, Stdio};

use super::TestApp;
use serde_json::{json, Value};

const PROVIDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.py");

pub struct Provider {
    pub url: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    pub fn start() -> Provider {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .arg(PROVIDER)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with PyJWT must be installed (scripts/test installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
            .to_string();
        Provider {
            url,
            child,
            http: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A token for `sub` in `groups`, signed with `alg` at the test clock's
    /// time, with `extra` request fields (aud, iss, exp_in, nbf_in, kid).
    pub async fn token(
        &self,
        t: &TestApp,
        sub: &str,
        groups: &[&str],
        alg: &str,
        extra: Value,
    ) -> String {
        let mut body = json!({ "sub": sub, "groups": groups, "alg": alg, "now": t.now_secs() });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        self.post("/token", body).await["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn public_pem(&self, alg: &str) -> String {
        self.http
            .get(format!("{}/public-pem?alg={alg}", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Provider {
    /// Stop the provider: the outage.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Register the console's client; a redirect URI on 127.0.0.1 matches
    /// any port (RFC 8252, for `breakglass login`).
    pub async fn client(&self, id: &str, secret: Option<&str>, redirect_uris: &[String]) {
        self.post(
            "/clients",
            json!({ "client_id": id, "client_secret": secret, "redirect_uris": redirect_uris }),
        )
        .await;
    }

    /// Who signs in at the provider next (at the test clock's time).
    pub async fn login_as(&self, t: &TestApp, sub: &str, groups: &[&str]) {
        self.post(
            "/login-as",
            json!({ "sub": sub, "groups": groups, "now": t.now_secs() }),
        )
        .await;
    }
}
