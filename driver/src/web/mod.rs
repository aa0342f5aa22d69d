//! The driver's read-only web status page (`--http`): the cluster (drivers, workers and their
//! share of the ring, stored datasets, jobs), each job (its stages as a DAG with progress
//! bars, its tasks, a timeline), and `/metrics` for Prometheus (the token as a bearer token).
//! Pages are rendered here as HTML with inline SVG, no JavaScript; a page of a running job
//! reloads itself every second. Any driver serves it from its replicated state; a follower
//! says where the leader is.
//!
//! Access is guarded by the cluster token as Jupyter guards a notebook: `/?token=TOKEN` (the
//! link `cluster up` prints) sets a session cookie and redirects; any request without a
//! valid cookie gets 401 and a page saying how to log in.
//!
//! Pages are `maud` templates (compiled, escaping by default): `sections` holds the tables,
//! `charts` the SVG pictures; this module routes, guards and lays out.

mod charts;
mod sections;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use ringleader_core::proto;
use ringleader_core::proto::driver_server::Driver as _;
use tokio::net::TcpListener;
use tonic::Request;

use crate::leader::DriverInner;
use crate::service::DriverService;

/// The session cookie's name.
const COOKIE: &str = "ringleader-session";

/// What the pages read.
#[derive(Clone)]
struct Web {
    service: Arc<DriverService>,
    inner: Arc<DriverInner>,
    /// The cluster token (`None`: a cluster without one, on loopback: no login).
    token: Option<String>,
    /// Whether the pages are served over TLS (the cookie is then marked `Secure`).
    secure: bool,
}

/// Serves the pages on `listener` until `shutdown` completes: over TLS with this driver's
/// certificate when it has one (see [`ringleader_core::security::web_tls`]), else plain.
pub async fn serve(
    listener: TcpListener,
    inner: Arc<DriverInner>,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let web = Web {
        service: Arc::new(DriverService::new(inner.clone())),
        inner,
        token,
        secure: ringleader_core::security::tls::serves_tls(),
    };
    let app = Router::new()
        .route("/", get(overview))
        .route("/jobs/{id}", get(job_page))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(web);
    ringleader_core::security::web_tls::serve(listener, app, shutdown).await
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `None` when the request may see the pages; otherwise the response to give: a redirect
/// that sets the cookie (a right `?token=`), or 401.
fn refuse(web: &Web, headers: &HeaderMap, query: &TokenQuery, path: &str) -> Option<Response> {
    let Some(token) = &web.token else {
        return None;
    };
    let session = ringleader_core::security::auth::web_session_for(token);
    if let Some(given) = &query.token {
        if ringleader_core::security::auth::secrets_equal(given, token) {
            // The cookie is a session value derived from the token, never the token itself.
            let secure = if web.secure { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/{secure}");
            return Some(([(header::SET_COOKIE, cookie)], Redirect::to(path)).into_response());
        }
        return Some(unauthorized());
    }
    let has_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|given| ringleader_core::security::auth::secrets_equal(given, &session));
    // A scraper (Prometheus) sends the token as a bearer token instead.
    let has_bearer =
        ringleader_core::exposition::is_bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()), token);
    (!has_cookie && !has_bearer).then(unauthorized)
}

fn unauthorized() -> Response {
    let body = html! {
        h1 { "401: log in with the cluster's token" }
        p {
            "Open the link " code { "ringleader cluster up" } " printed, " code { (ringleader_core::security::web_tls::scheme()) "://HOST:PORT/?token=…" }
            ": the token is in the cluster directory's " code { "token" } " file ("
            code { "RINGLEADER_TOKEN_FILE" } "). It sets a cookie for this site."
        }
    };
    (StatusCode::UNAUTHORIZED, page("Log in", None, body)).into_response()
}

async fn not_found() -> Response {
    let body = html! {
        h1 { "404" }
        p { "No such page. " a href="/" { "The cluster" } "." }
    };
    (StatusCode::NOT_FOUND, page("Not found", None, body)).into_response()
}

async fn overview(State(web): State<Web>, headers: HeaderMap, Query(query): Query<TokenQuery>) -> Response {
    if let Some(response) = refuse(&web, &headers, &query, "/") {
        return response;
    }
    let Ok(status) = web
        .service
        .cluster_status(Request::new(proto::ClusterStatusRequest {}))
        .await
    else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the driver cannot read its state").into_response();
    };
    let status = status.into_inner();
    let datasets = match web
        .service
        .list_datasets(Request::new(proto::ListDatasetsRequest {}))
        .await
    {
        Ok(list) => list.into_inner().datasets,
        Err(_) => Vec::new(),
    };
    let body = html! {
        h1 { "Ringleader cluster" }
        (leader_line(&web))
        (sections::drivers(status.raft.as_ref()))
        (sections::workers(&status.workers))
        (sections::datasets(&datasets))
        (sections::jobs(&status.jobs))
    };
    let running = status.jobs.iter().any(|j| j.state == "running");
    page("Ringleader cluster", running.then_some(2), body).into_response()
}

async fn metrics(State(web): State<Web>, headers: HeaderMap, Query(query): Query<TokenQuery>) -> Response {
    if let Some(response) = refuse(&web, &headers, &query, "/metrics") {
        return response;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&web.inner),
    )
        .into_response()
}

async fn job_page(
    State(web): State<Web>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    // Back to this page after logging in, if its id is one (a redirect names it in a header).
    let back = if ringleader_core::ids::valid_job_id(&id) {
        format!("/jobs/{id}")
    } else {
        "/".to_string()
    };
    if let Some(response) = refuse(&web, &headers, &query, &back) {
        return response;
    }
    let (detail, tasks, attempts) = {
        let state = web.inner.state();
        let Some(job) = state.jobs.get(id.as_str()) else {
            let body = html! {
                h1 { "404: no job " (id) }
                p { "This cluster does not remember it. " a href="/" { "The job list" } "." }
            };
            return (StatusCode::NOT_FOUND, page("No such job", None, body)).into_response();
        };
        let attempts = web.inner.attempts_of(&id);
        (
            crate::views::job_detail(job, &attempts),
            sections::task_rows(job, &attempts),
            attempts,
        )
    };
    let job = detail.job.clone().unwrap_or_default();
    let body = html! {
        h1 { (job.job_id) " " small { (job.name) } }
        p { a href="/" { "← cluster" } }
        (leader_line(&web))
        p class={ "state " (job.state) } {
            (job.state)
            @if !job.message.is_empty() { ": " (job.message) }
            "; submitted " (sections::when(job.submitted_ms)) "; "
            (job.tasks_done) " of " (job.tasks_total) " tasks done"
        }
        h2 { "Stages" }
        (charts::stage_dag(&detail.stages))
        (sections::stages(&detail.stages))
        @if !detail.accumulators.is_empty() {
            h2 { "Accumulators" }
            (sections::accumulators(&detail.accumulators))
        }
        h2 { "Tasks" }
        (sections::tasks(&tasks))
        h2 { "Timeline" }
        (charts::timeline(&attempts, ringleader_core::clock::now_ms()))
    };
    let refresh = (job.state == "running").then_some(1);
    page(&format!("{} — Ringleader", job.job_id), refresh, body).into_response()
}

/// On a follower, a note that its view is replicated (and from where); on the leader, nothing.
fn leader_line(web: &Web) -> Markup {
    match web.inner.require_leader() {
        Ok(_) => html! {},
        Err(_) => sections::follower_note(web.inner.leader_address().as_deref()),
    }
}

/// The pages' style sheet.
const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222} \
    table{border-collapse:collapse;margin:.5em 0 1.5em} \
    td,th{border:1px solid #ccd;padding:3px 8px;text-align:left;font-size:13px} th{background:#eef} \
    .state.failed,.state.cancelled{color:#b00} .state.succeeded{color:#070} .note{color:#666} \
    small{color:#666;font-weight:normal}";

/// A whole page: `body` under `title`, reloading every `refresh` seconds if given.
fn page(title: &str, refresh: Option<u32>, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                @if let Some(s) = refresh { meta http-equiv="refresh" content=(s); }
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    };
    Html(page.into_string())
}
