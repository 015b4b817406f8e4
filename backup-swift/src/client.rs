//! Requests to Swift with a valid token, retried with exponential backoff and
//! jitter for 5xx, 429, timeouts and connection resets — per request, never a
//! whole backup. Tokens are renewed before they expire and once on a 401.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::{Method, Response};
use tokio::sync::Mutex;

use crate::auth::{authenticate, Session};
use crate::config::Credentials;
use crate::error::SwiftError;

/// One request, relative to the storage URL.
pub(crate) struct Req {
    pub method: Method,
    /// Already percent-encoded, starting with `/`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
    /// What it concerns, for messages: `object c/k`, `container c`.
    pub what: String,
}

impl Req {
    pub(crate) fn new(method: Method, path: String, what: String) -> Self {
        Req {
            method,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            what,
        }
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    creds: Credentials,
    storage_url: Option<String>,
    session: Mutex<Option<Session>>,
    retries: u32,
}

impl Client {
    pub(crate) fn new(
        creds: Credentials,
        storage_url: Option<String>,
        retries: u32,
        timeout: Duration,
    ) -> Result<Self, SwiftError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| SwiftError::Transport {
                method: "setup".into(),
                what: "HTTP client".into(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            creds,
            storage_url,
            session: Mutex::new(None),
            retries: retries.max(1),
        })
    }

    async fn session(&self, renew: bool) -> Result<Session, SwiftError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            if !renew && Instant::now() < s.renew_after {
                return Ok(s.clone());
            }
        }
        let mut attempt = 0;
        let mut session = loop {
            match authenticate(&self.http, &self.creds).await {
                Ok(s) => break s,
                // Keystone or the proxy may be restarting: a reachability failure is worth a retry.
                Err(SwiftError::Auth { reason, .. })
                    if reason.starts_with("cannot reach") && attempt + 1 < self.retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    tracing::debug!(%reason, attempt, "authentication retried");
                }
                Err(e) => return Err(e),
            }
        };
        if let Some(url) = &self.storage_url {
            session.storage_url = url.clone();
        }
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Sends `req`, retrying what is worth retrying. Returns the final response
    /// whatever its status; the caller decides what a status means.
    pub(crate) async fn send(&self, req: &Req) -> Result<Response, SwiftError> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            let session = self.session(false).await?;
            let mut rb = self
                .http
                .request(
                    req.method.clone(),
                    format!("{}{}", session.storage_url.trim_end_matches('/'), req.path),
                )
                .header("X-Auth-Token", &session.token)
                .query(&req.query);
            for (name, value) in &req.headers {
                rb = rb.header(*name, value);
            }
            if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            match rb.send().await {
                Ok(resp) if resp.status().as_u16() == 401 && !renewed => {
                    renewed = true;
                    self.session(true).await?;
                }
                Ok(resp) if retryable_status(resp.status().as_u16()) && attempt + 1 < self.retries => {
                    attempt += 1;
                    tracing::debug!(what = %req.what, status = resp.status().as_u16(), attempt, "retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt + 1 < self.retries => {
                    attempt += 1;
                    tracing::debug!(what = %req.what, error = %e, attempt, "retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    return Err(SwiftError::Transport {
                        method: req.method.to_string(),
                        what: req.what.clone(),
                        reason: format!("{e} (after {} attempts)", attempt + 1),
                    })
                }
            }
        }
    }

    /// Sends a GET and reads the whole body, retrying a body cut short too.
    pub(crate) async fn get_body(&self, req: &Req) -> Result<(u16, Bytes), SwiftError> {
        let mut attempt = 0;
        loop {
            let resp = self.send(req).await?;
            let status = resp.status().as_u16();
            match read_body(resp).await {
                Ok(body) => return Ok((status, body)),
                Err(e) if attempt + 1 < self.retries => {
                    attempt += 1;
                    tracing::debug!(what = %req.what, error = %e, attempt, "body cut short; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    return Err(SwiftError::Transport {
                        method: "GET".into(),
                        what: req.what.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    /// The cluster's `/info` (capabilities and limits), next to the storage URL.
    pub(crate) async fn info(&self) -> Result<serde_json::Value, SwiftError> {
        let session = self.session(false).await?;
        let fail = |reason: String| SwiftError::Transport {
            method: "GET".into(),
            what: "/info".into(),
            reason,
        };
        let mut url = reqwest::Url::parse(&session.storage_url).map_err(|e| fail(e.to_string()))?;
        url.set_path("/info");
        url.set_query(None);
        let resp = self.http.get(url).send().await.map_err(|e| fail(e.to_string()))?;
        resp.json().await.map_err(|e| fail(e.to_string()))
    }
}

/// Largest body read into memory: above any object backupapps writes
/// (chunks are bounded), so a forged giant object cannot exhaust memory.
const MAX_BODY: u64 = 1 << 30;

/// Reads a body into one buffer sized from Content-Length: a growing buffer
/// would double (and copy) itself on the way to a chunk's size.
async fn read_body(mut resp: Response) -> Result<Bytes, String> {
    let announced = resp.content_length().unwrap_or(0);
    if announced > MAX_BODY {
        return Err(format!(
            "object of {announced} bytes is larger than the {MAX_BODY} bytes read at most"
        ));
    }
    let capacity = usize::try_from(announced).unwrap_or(0);
    let mut buf = backup_core::BigBuf::with_capacity(capacity).map_err(|e| format!("cannot allocate memory: {e}"))?;
    while let Some(piece) = resp.chunk().await.map_err(|e| e.to_string())? {
        if (buf.len() + piece.len()) as u64 > MAX_BODY {
            return Err(format!("object is larger than the {MAX_BODY} bytes read at most"));
        }
        buf.extend_from_slice(&piece)
            .map_err(|e| format!("cannot allocate memory: {e}"))?;
    }
    Ok(buf.freeze())
}

fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// 200 ms doubling per attempt, capped at 10 s, times a random 0.5–1.5 so that
/// parallel uploads do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(6)).min(10_000);
    let jitter: f64 = rand::thread_rng().gen_range(0.5..1.5);
    Duration::from_millis((base as f64 * jitter) as u64)
}
