//! The worker's HTTP port (`--http`): `/metrics` for Prometheus, with the cluster token as a
//! bearer token; everything else is 404.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::service::WorkerInner;

#[derive(Clone)]
struct Metrics {
    inner: Arc<WorkerInner>,
    slots: u32,
    token: Option<String>,
}

/// Serves `/metrics` of `inner` on `listener` until `shutdown` completes; with a `token`,
/// only to a request carrying it as a bearer token.
pub async fn serve(
    listener: TcpListener,
    inner: Arc<WorkerInner>,
    slots: u32,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Metrics { inner, slots, token });
    ringleader_core::security::web_tls::serve(listener, app, shutdown).await
}

async fn metrics(State(m): State<Metrics>, headers: HeaderMap) -> Response {
    if let Some(token) = &m.token {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !ringleader_core::exposition::is_bearer(given, token) {
            return (
                StatusCode::UNAUTHORIZED,
                "send the cluster token as a bearer token: Authorization: Bearer TOKEN\n",
            )
                .into_response();
        }
    }
    let body = tokio::task::spawn_blocking(move || crate::metrics::render(&m.inner, m.slots)).await;
    match body {
        Ok(body) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the metrics could not be gathered").into_response(),
    }
}
