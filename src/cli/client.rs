//! The CLI's HTTP client: bearer token, JSON in and out, errors as the
//! server's `{"error": {...}}` body.

use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A refused or failed call; the exit code tells scripts which.
#[derive(Debug)]
pub struct CallError {
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code and message come from the server: escaped, so that they
        // cannot drive the terminal they are printed on.
        let code = crate::domain::text::escape(&self.code);
        let message = crate::domain::text::escape(&self.message);
        match self.status {
            Some(s) => write!(f, "refused ({s} {code}): {message}"),
            None => write!(f, "{code}: {message}"),
        }
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("the HTTP client builds with static settings"),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, CallError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// POST a JSON body that holds secrets: the bytes stay in memory that
    /// is zeroized when the HTTP client is done with them.
    pub async fn post_secret<T: DeserializeOwned>(
        &self,
        path: &str,
        body: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<T, CallError> {
        self.send(
            self.http
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(reqwest::Body::from(bytes::Bytes::from_owner(body))),
        )
        .await
    }

    /// GET a long answer, handing each chunk to `sink` as it arrives;
    /// returns the number of bytes.
    pub async fn download(
        &self,
        path: &str,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64, CallError> {
        let mut req = self
            .http
            .get(self.url(path))
            .timeout(std::time::Duration::from_secs(6 * 3600));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut res = req.send().await.map_err(|e| CallError {
            status: None,
            code: "unreachable".into(),
            message: format!("cannot reach the server at {}: {}", self.base, e),
        })?;
        let status = res.status();
        if !status.is_success() {
            let bytes = res.bytes().await.unwrap_or_default();
            return Err(error_of(status, &bytes));
        }
        let mut n = 0u64;
        loop {
            let chunk = res.chunk().await.map_err(|e| CallError {
                status: Some(status.as_u16()),
                code: "bad_response".into(),
                message: format!("the download stopped part-way: {e}"),
            })?;
            let Some(chunk) = chunk else { break };
            n += chunk.len() as u64;
            sink(&chunk).map_err(|e| CallError {
                status: None,
                code: "write_failed".into(),
                message: e.to_string(),
            })?;
        }
        Ok(n)
    }

    /// GET an open probe: its status and JSON body, whether it is ready
    /// (200) or not (503); anything else is an error.
    pub async fn probe(
        &self,
        path: &str,
        timeout: std::time::Duration,
    ) -> Result<(u16, Value), CallError> {
        let (status, bytes) = self
            .fetch(self.http.get(self.url(path)).timeout(timeout))
            .await?;
        match status.as_u16() {
            200 | 503 => serde_json::from_slice(&bytes)
                .map(|v| (status.as_u16(), v))
                .map_err(|_| CallError {
                    status: Some(status.as_u16()),
                    code: "bad_response".into(),
                    message: format!("{path} did not answer with its JSON body"),
                }),
            _ => Err(error_of(status, &bytes)),
        }
    }

    /// Send `req` and read the whole answer.
    async fn fetch(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), CallError> {
        let res = req.send().await.map_err(|e| CallError {
            status: None,
            code: "unreachable".into(),
            message: format!("cannot reach the server at {}: {}", self.base, e),
        })?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| CallError {
            status: Some(status.as_u16()),
            code: "bad_response".into(),
            message: e.to_string(),
        })?;
        Ok((status, bytes))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let (status, bytes) = self.fetch(req).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| CallError {
                status: Some(status.as_u16()),
                code: "bad_response".into(),
                message: format!("the server's answer is not what this CLI expects: {e}"),
            });
        }
        Err(error_of(status, &bytes))
    }
}

/// The server's `{"error": {...}}` body as a `CallError`.
fn error_of(status: reqwest::StatusCode, bytes: &[u8]) -> CallError {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    CallError {
        status: Some(status.as_u16()),
        code: v["error"]["code"]
            .as_str()
            .unwrap_or("http_error")
            .to_string(),
        message: v["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| status.to_string()),
    }
}
