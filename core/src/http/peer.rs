//! The HTTP client one instance asks another with: a keyed query forwarded to the key's owner, a list gathered
//! from every owner. hyper's pooled client (from `hyper-util`, the same hyper axum serves with), so connections
//! to a peer are kept and reused, with a deadline on every request from connect to the last byte of the body,
//! and a bound on how large an answer may be.

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The largest answer read from a peer: the services' largest lists are a few hundred kilobytes.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How long an idle connection to a peer is kept for the next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a peer gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer's URL and the target do not make a URL.
    #[error("{url} is not a URL")]
    Url {
        /// What was tried.
        url: String,
        /// Why it is not one.
        #[source]
        source: axum::http::uri::InvalidUri,
    },
    /// The request could not be built.
    #[error("building the request")]
    Request(#[source] axum::http::Error),
    /// No connection, or the connection failed before an answer.
    #[error("no answer")]
    Send(#[source] hyper_util::client::legacy::Error),
    /// The answer's body failed, or was larger than 16 MiB.
    #[error("reading the answer")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Nothing complete within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A peer's whole answer.
#[derive(Debug)]
pub struct PeerAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// A pooled client with a deadline per request; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct PeerClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl PeerClient {
    /// A client whose requests each get `timeout`, connection included.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(IDLE_TIMEOUT).build(connector);
        PeerClient { client, timeout }
    }

    /// GET `target` (path and query) from `base` (`http://host:port`; `host:port` is taken as http) with `headers`.
    pub async fn get(&self, base: &str, target: &str, headers: &[(&str, &str)]) -> Result<PeerAnswer, PeerError> {
        let base = base.trim_end_matches('/');
        let url = if base.contains("://") { format!("{base}{target}") } else { format!("http://{base}{target}") };
        let uri: Uri = url.parse().map_err(|source| PeerError::Url { url: url.clone(), source })?;
        let request =
            headers.iter().fold(Request::get(uri), |r, (k, v)| r.header(*k, *v)).body(Empty::new()).map_err(PeerError::Request)?;
        let answer = async {
            let (parts, body) = self.client.request(request).await.map_err(PeerError::Send)?.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await.map_err(PeerError::Body)?.to_bytes();
            Ok(PeerAnswer { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, answer).await.map_err(|_| PeerError::Timeout(self.timeout))?
    }
}

/// An error with its sources, for an answer's body: "no answer: connection refused".
pub fn describe(e: &PeerError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
