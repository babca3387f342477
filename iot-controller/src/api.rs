//! `POST /devices/{device_id}/commands`: a person's command to a device, beside the controller's.
//!
//! - **Authentication**: `Authorization: Bearer <token>` (the scheme in any case, as RFC 9110 says), compared with
//!   the configured token (`IOT_API_TOKEN`) in time that does not depend on where the two first differ. Without a configured token the endpoint is off
//!   (403) rather than open: forgetting to set a secret must not hand out control of people's heating.
//! - **Validation**, in this order: token (401), body size (413 over [`MAX_BODY`] bytes), device id, body (400),
//!   device in the registry (404), action known and meant for the device's kind (400). Every refusal is JSON.
//! - **Delivery**: the command is produced to `device-commands.<kind>`, keyed by device, with the same murmur2
//!   partitioner as the controller's own commands (so one device's commands stay in order on one partition), and
//!   the answer is 202 only once the broker has acknowledged it; 503 if it does not within 10 seconds.
//! - The command is remembered by this instance so `GET /devices/{device_id}` shows it as the last command when
//!   it is newer than the controller's. The controller's own mode is not changed: a manual `heat_on` is a one-off
//!   that the next window's decision may undo, as a thermostat's schedule would.

use crate::http::check_id;
use crate::model::{Action, Command, Device};
use crate::topology::{Settings, DEVICES_STORE};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use streamcore::http::ApiError;
use streamcore::query::StoreRegistry;
use streamcore::StreamsConfig;

/// Commands accepted by this instance's API, newest per device.
#[derive(Clone, Default)]
pub struct ManualCommands(Arc<RwLock<HashMap<String, Command>>>);

impl ManualCommands {
    /// The newest manual command for `device_id`.
    pub fn get(&self, device_id: &str) -> Option<Command> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(device_id).cloned()
    }

    fn insert(&self, c: Command) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(c.device_id.clone(), c);
    }
}

/// What the endpoint needs.
#[derive(Clone)]
pub struct CommandApi {
    token: Option<Arc<str>>,
    producer: FutureProducer,
    settings: Settings,
    stores: StoreRegistry,
    manual: ManualCommands,
    issued: Arc<AtomicU64>,
}

impl CommandApi {
    /// The endpoint with `token` (`None`: off), producing as the runtime of `streams` does.
    pub fn new(
        token: Option<String>,
        streams: &StreamsConfig,
        settings: Settings,
        stores: StoreRegistry,
        manual: ManualCommands,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let mut cfg = streams.producer_config();
        cfg.set("message.timeout.ms", "10000");
        let token = token.filter(|t| !t.is_empty()).map(Arc::from);
        Ok(CommandApi { token, producer: cfg.create()?, settings, stores, manual, issued: Arc::new(AtomicU64::new(0)) })
    }

    /// The route.
    pub fn routes(self) -> Router {
        Router::new().route("/devices/{device_id}/commands", post(issue)).with_state(self)
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: "the command API is off: no IOT_API_TOKEN is configured".into(),
            });
        };
        match bearer_token(headers) {
            Some(g) if constant_time_eq(expected.as_bytes(), g.as_bytes()) => Ok(()),
            _ => Err(ApiError { status: StatusCode::UNAUTHORIZED, message: "a valid bearer token is required".into() }),
        }
    }
}

/// The largest request body the endpoint reads: a command is an action and a short reason.
pub const MAX_BODY: usize = 64 * 1024;

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

/// Whether `given` equals `expected`, in time that depends only on `expected`'s length.
fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = expected.len() ^ given.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(e ^ given.get(i).copied().unwrap_or(!e));
    }
    std::hint::black_box(diff) == 0
}

/// The body of a command request: `{"action", "reason"}`, nothing else.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The action's name, checked against the device's kind once the device is known.
    pub action: String,
    /// Why, for the command's record.
    #[serde(default)]
    pub reason: Option<String>,
}

impl CommandRequest {
    /// Decode a body of at most [`MAX_BODY`] bytes, or say why not.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.len() > MAX_BODY {
            return Err(format!("the body is over {MAX_BODY} bytes"));
        }
        serde_json::from_slice(body).map_err(|e| format!("body must be {{\"action\", \"reason\"}}: {e}"))
    }
}

/// The 202 body.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    /// The command's id.
    pub command_id: String,
    /// Where the broker put it.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

async fn issue(
    State(api): State<CommandApi>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    api.authorize(&headers)?;
    // axum reads bodies up to 2 MB (read whole, so the client gets its answer on a clean connection); a command
    // needs far less.
    let too_large = || ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, message: format!("the body is over {MAX_BODY} bytes") };
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        status => ApiError { status, message: e.body_text() },
    })?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    check_id("device_id", &device_id)?;
    let req = CommandRequest::parse(&body).map_err(ApiError::bad_request)?;
    let device: Device = api
        .stores
        .get_json(DEVICES_STORE, &device_id)?
        .ok_or_else(|| ApiError::not_found(format!("no device {device_id} in the registry")))?;
    let action = Action::parse(&req.action).ok_or_else(|| ApiError::bad_request(format!("unknown action {:?}", req.action)))?;
    if !device.kind.actions().contains(&action) {
        return Err(ApiError::bad_request(format!("a {} does not take {}", device.kind.as_str(), action.as_str())));
    }
    let now = Utc::now();
    let command = Command {
        command_id: format!("api-{}-{}", now.timestamp_micros(), api.issued.fetch_add(1, Ordering::Relaxed)),
        device_id: device_id.clone(),
        home_id: device.home_id.clone(),
        action,
        reason: req.reason.unwrap_or_else(|| "requested through the API".into()),
        issued_at: now,
        ts: now.fixed_offset(),
    };
    let topic = api.settings.commands_topic(device.kind);
    let value = serde_json::to_vec(&command).map_err(|e| ApiError::internal(e.to_string()))?;
    let record = FutureRecord::to(&topic).key(&device_id).payload(&value);
    let delivery = api.producer.send(record, Duration::from_secs(10)).await;
    let (partition, offset) = delivery.map(|d| (d.partition, d.offset)).map_err(|(e, _)| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("the broker did not acknowledge the command: {e}"),
    })?;
    let accepted = Accepted { command_id: command.command_id.clone(), topic, partition, offset };
    api.manual.insert(command);
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, constant_time_eq};
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_bearer() {
        let token = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            bearer_token(&h).map(str::to_owned)
        };
        for v in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret", " bEaReR s3cret"] {
            assert_eq!(token(v).as_deref(), Some("s3cret"), "{v:?}");
        }
        assert_eq!(token("Basic s3cret"), None);
        assert_eq!(token("Bearers3cret"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"secret", b""));
    }
}
