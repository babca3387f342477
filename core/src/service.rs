//! A service process: its runtimes (one per stage) on their stream threads, its HTTP server, and one shutdown
//! that stops polling, lets each runtime finish the record in hand, commit and close its stores, then stops the
//! server. If any stream thread fails, the others are stopped too and the failure is returned.

use crate::error::StreamError;
use crate::Runtime;
use std::future::{Future, IntoFuture};
use std::sync::Arc;

/// Why a service stopped other than by request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A stream thread stopped with an error.
    #[error("stream thread: {0}")]
    Stream(#[from] StreamError),
    /// A stream thread panicked.
    #[error("a stream thread panicked")]
    Panicked,
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// Run `runtimes` and serve `router` on `listener` until `shutdown` completes or a stream thread stops.
pub async fn serve(
    runtimes: Vec<Runtime>,
    router: axum::Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    let stops: Vec<_> = runtimes.iter().map(Runtime::shutdown_handle).collect();
    let stopped = Arc::new(tokio::sync::Notify::new());
    let server = {
        let stopped = stopped.clone();
        tokio::spawn(axum::serve(listener, router).with_graceful_shutdown(async move { stopped.notified().await }).into_future())
    };
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut joins = Vec::new();
    for runtime in runtimes {
        let thread = runtime.spawn()?;
        let done = done_tx.clone();
        joins.push(tokio::task::spawn_blocking(move || {
            let result = thread.join();
            let _ = done.send(());
            result
        }));
    }
    tokio::select! {
        _ = done_rx.recv() => tracing::warn!("a stream thread stopped; stopping the service"),
        () = shutdown => tracing::info!("shutdown requested"),
    }
    for stop in &stops {
        stop.trigger();
    }
    let mut result = Ok(());
    for join in joins {
        let outcome = match join.await {
            Ok(Ok(r)) => r.map_err(ServiceError::from),
            Ok(Err(_)) | Err(_) => Err(ServiceError::Panicked),
        };
        if result.is_ok() {
            result = outcome;
        }
    }
    stopped.notify_one();
    match server.await {
        Ok(served) => served?,
        Err(_) => return Err(ServiceError::Panicked),
    }
    result
}

/// Log to stderr, as text or (`json`) one JSON object per line; `RUST_LOG` overrides the default levels.
pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
