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

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use ringleader_core::proto;
use ringleader_core::proto::driver_server::Driver as _;
use tokio::net::TcpListener;
use tonic::Request;

use crate::leader::DriverInner;
use crate::service::DriverService;
use crate::state::TaskState;

/// The session cookie's name.
const COOKIE: &str = "ringleader-token";

/// What the pages read.
#[derive(Clone)]
struct Web {
    service: Arc<DriverService>,
    inner: Arc<DriverInner>,
    /// The cluster token (`None`: a cluster without one, on loopback: no login).
    token: Option<String>,
}

/// Serves the pages on `listener` until `shutdown` completes.
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
    };
    let app = Router::new()
        .route("/", get(overview))
        .route("/jobs/{id}", get(job_page))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(web);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Binds the web page's address.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
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
    if let Some(given) = &query.token {
        if given == token {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            return Some(([(header::SET_COOKIE, cookie)], Redirect::to(path)).into_response());
        }
        return Some(unauthorized());
    }
    let has_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')) == Some(token.as_str()));
    // A scraper (Prometheus) sends the token as a bearer token instead.
    let has_bearer =
        ringleader_core::exposition::is_bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()), token);
    (!has_cookie && !has_bearer).then(unauthorized)
}

fn unauthorized() -> Response {
    let body = page(
        "Log in",
        None,
        "<h1>401: log in with the cluster's token</h1>\
         <p>Open the link <code>ringleader cluster up</code> printed, \
         <code>http://HOST:PORT/?token=…</code>: the token is in the cluster directory's \
         <code>token</code> file (<code>RINGLEADER_TOKEN_FILE</code>). It sets a cookie for this site.</p>",
    );
    (StatusCode::UNAUTHORIZED, Html(body)).into_response()
}

async fn not_found() -> Response {
    let body = page(
        "Not found",
        None,
        "<h1>404</h1><p>No such page. <a href=\"/\">The cluster</a>.</p>",
    );
    (StatusCode::NOT_FOUND, Html(body)).into_response()
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
    let mut body = String::from("<h1>Ringleader cluster</h1>");
    body += &leader_line(&web);
    body += &drivers_section(status.raft.as_ref());
    body += &workers_section(&status.workers);
    body += &datasets_section(&datasets);
    body += &jobs_section(&status.jobs);
    let running = status.jobs.iter().any(|j| j.state == "running");
    Html(page("Ringleader cluster", running.then_some(2), &body)).into_response()
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
    let back = if ringleader_core::cluster_shuffle::valid_job_id(&id) {
        format!("/jobs/{id}")
    } else {
        "/".to_string()
    };
    if let Some(response) = refuse(&web, &headers, &query, &back) {
        return response;
    }
    let (detail, tasks, attempts) = {
        let state = web.inner.state();
        let Some(job) = state.jobs.get(&id) else {
            let body = format!(
                "<h1>404: no job {}</h1><p>This cluster does not remember it. <a href=\"/\">The job list</a>.</p>",
                escape(&id)
            );
            return (StatusCode::NOT_FOUND, Html(page("No such job", None, &body))).into_response();
        };
        let attempts: Vec<(crate::observed::AttemptKey, crate::observed::AttemptSeen)> = state
            .observed
            .of_job(&id)
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (crate::views::job_detail(job), task_rows(job, &attempts), attempts)
    };
    let job = detail.job.clone().unwrap_or_default();
    let mut body = format!(
        "<h1>{} <small>{}</small></h1><p><a href=\"/\">&larr; cluster</a></p>",
        escape(&job.job_id),
        escape(&job.name)
    );
    body += &leader_line(&web);
    let _ = write!(
        body,
        "<p class=\"state {0}\">{0}{1}; submitted {2}; {3} of {4} tasks done</p>",
        escape(&job.state),
        if job.message.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&job.message))
        },
        when(job.submitted_ms),
        job.tasks_done,
        job.tasks_total
    );
    body += "<h2>Stages</h2>";
    body += &stage_dag(&detail.stages);
    body += &stages_table(&detail.stages);
    body += "<h2>Tasks</h2>";
    body += &tasks_table(&tasks);
    body += "<h2>Timeline</h2>";
    body += &timeline(&attempts, ringleader_core::clock::now_ms());
    let refresh = (job.state == "running").then_some(1);
    Html(page(&format!("{} — Ringleader", job.job_id), refresh, &body)).into_response()
}

/// One task as the job page lists it.
struct TaskRow {
    stage: usize,
    partition: usize,
    state: &'static str,
    attempt: u32,
    worker: String,
    read: Option<ringleader_core::plan::Volume>,
    rows: Option<u64>,
    bytes: Option<u64>,
    attempts: u32,
    failures: u32,
    failed_on: Vec<String>,
    /// The current attempt's time so far, as this driver saw it.
    millis: Option<u64>,
    /// Why earlier attempts failed.
    errors: Vec<String>,
}

fn task_rows(
    job: &crate::state::JobRecord,
    seen: &[(crate::observed::AttemptKey, crate::observed::AttemptSeen)],
) -> Vec<TaskRow> {
    let now = ringleader_core::clock::now_ms();
    let mut rows = Vec::new();
    for (stage, tasks) in job.tasks.iter().enumerate() {
        for (partition, task) in tasks.iter().enumerate() {
            let history = job
                .history
                .get(stage)
                .and_then(|h| h.get(partition))
                .cloned()
                .unwrap_or_default();
            let (state, attempt, worker, read, volume) = match task {
                TaskState::Pending => ("pending", 0, String::new(), None, None),
                TaskState::Running { attempt, worker } => ("running", *attempt, worker.clone(), None, None),
                TaskState::Done {
                    attempt,
                    worker,
                    value,
                    read,
                } => ("done", *attempt, worker.clone(), Some(*read), Some(value.volume())),
            };
            let of_task = seen
                .iter()
                .filter(|(k, _)| k.stage as usize == stage && k.task as usize == partition);
            let millis = of_task
                .clone()
                .find(|(k, _)| k.attempt == attempt)
                .map(|(_, s)| s.ended_ms.unwrap_or(now).saturating_sub(s.started_ms));
            let errors = of_task
                .filter_map(|(k, s)| Some(format!("attempt {}: {}", k.attempt, s.error.as_ref()?)))
                .collect();
            rows.push(TaskRow {
                millis,
                errors,
                stage,
                partition,
                state,
                attempt,
                worker,
                read,
                rows: volume.and_then(|v| v.0),
                bytes: volume.and_then(|v| v.1),
                attempts: history.attempts,
                failures: history.failures,
                failed_on: history.failed_on,
            });
        }
    }
    rows
}

fn leader_line(web: &Web) -> String {
    match web.inner.require_leader() {
        Ok(_) => String::new(),
        Err(_) => match web.inner.leader_address() {
            Some(leader) => format!(
                "<p class=\"note\">This driver is a follower: its view is replicated from the leader at {}.</p>",
                escape(&leader)
            ),
            None => "<p class=\"note\">This driver is a follower; no leader is elected now.</p>".to_string(),
        },
    }
}

fn drivers_section(raft: Option<&proto::RaftStatus>) -> String {
    let Some(r) = raft else {
        return String::new();
    };
    let mut s = String::from(
        "<h2>Drivers</h2><table><tr><th>driver</th><th>role</th><th>term</th><th>leader</th>\
         <th>last log index</th><th>commit index</th><th>applied</th><th>snapshot</th></tr>",
    );
    let _ = write!(
        s,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        r.node_id,
        escape(&r.role),
        r.term,
        escape(&r.leader_address),
        r.last_log_index,
        r.commit_index,
        r.applied_index,
        r.snapshot_index
    );
    for p in &r.peers {
        let _ = write!(
            s,
            "<tr><td>{}</td><td colspan=\"3\">{}</td><td colspan=\"4\">log matched up to {}</td></tr>",
            p.node_id,
            escape(&p.address),
            p.matched_index
        );
    }
    s + "</table>"
}

fn workers_section(workers: &[proto::WorkerStatus]) -> String {
    let mut s = String::from(
        "<h2>Workers</h2><table><tr><th>worker</th><th>address</th><th>slots</th><th>running tasks</th>\
         <th>alive</th><th>share of the ring</th></tr>",
    );
    for w in workers {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
            escape(&w.worker_id),
            escape(&w.address),
            w.slots,
            w.running_tasks,
            if w.alive { "yes" } else { "<b>no</b>" },
            w.ring_share * 100.0
        );
    }
    s += "</table>";
    s + &ring_picture(workers)
}

/// The ring as a circle: each worker's share as an arc of its own colour.
fn ring_picture(workers: &[proto::WorkerStatus]) -> String {
    const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
    let (cx, cy, r) = (90.0, 90.0, 70.0);
    let mut s = String::from("<svg width=\"420\" height=\"180\" role=\"img\" aria-label=\"the ring\">");
    let mut start = 0.0f64;
    for (i, w) in workers.iter().enumerate() {
        let share = w.ring_share.clamp(0.0, 1.0);
        if share <= 0.0 {
            continue;
        }
        let end = start + share;
        let point = |f: f64| {
            let a = f * std::f64::consts::TAU - std::f64::consts::FRAC_PI_2;
            (cx + r * a.cos(), cy + r * a.sin())
        };
        let ((x0, y0), (x1, y1)) = (point(start), point(end.min(0.9999)));
        let large = if share > 0.5 { 1 } else { 0 };
        let color = COLORS[i % COLORS.len()];
        let _ = write!(
            s,
            "<path d=\"M {x0:.1} {y0:.1} A {r} {r} 0 {large} 1 {x1:.1} {y1:.1}\" stroke=\"{color}\" stroke-width=\"18\" fill=\"none\"/>\
             <rect x=\"200\" y=\"{:.0}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"218\" y=\"{:.0}\">{} ({:.1}%)</text>",
            20.0 + 18.0 * i as f64,
            30.0 + 18.0 * i as f64,
            escape(&w.worker_id),
            share * 100.0
        );
        start = end;
    }
    s + "</svg>"
}

fn datasets_section(datasets: &[proto::DatasetInfo]) -> String {
    let mut s = String::from(
        "<h2>Stored datasets</h2><table><tr><th>name</th><th>format</th><th>partitions × replicas</th>\
         <th>rows</th><th>bytes</th><th>where each partition lives (primary first)</th></tr>",
    );
    for d in datasets {
        let rows: u64 = d.partitions.iter().map(|p| p.rows).sum();
        let bytes: u64 = d.partitions.iter().map(|p| p.bytes).sum();
        let placement: Vec<String> = d
            .partitions
            .iter()
            .map(|p| format!("{}: {}", p.partition, escape(&p.workers.join(", "))))
            .collect();
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{} × {}</td><td>{rows}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.name),
            escape(&d.format),
            d.partitions.len(),
            d.replicas,
            human_bytes(bytes),
            placement.join("<br>")
        );
    }
    s + "</table>"
}

fn jobs_section(jobs: &[proto::JobStatus]) -> String {
    let mut s = String::from(
        "<h2>Jobs</h2><table><tr><th>job</th><th>name</th><th>state</th><th>submitted</th><th>tasks</th>\
         <th>stages</th></tr>",
    );
    for j in jobs.iter().rev() {
        let _ = write!(
            s,
            "<tr><td><a href=\"/jobs/{0}\">{0}</a></td><td>{1}</td><td class=\"state {2}\">{2}</td><td>{3}</td>\
             <td>{4} / {5} {6}</td><td>{7}</td></tr>",
            escape(&j.job_id),
            escape(&j.name),
            escape(&j.state),
            when(j.submitted_ms),
            j.tasks_done,
            j.tasks_total,
            bar(j.tasks_done, j.tasks_total),
            j.stages
        );
    }
    s + "</table>"
}

/// The stages as a DAG: a box per stage, in columns by depth, an arrow from each parent.
fn stage_dag(stages: &[proto::StageStatus]) -> String {
    let mut depth = vec![0usize; stages.len()];
    for (i, st) in stages.iter().enumerate() {
        depth[i] = st
            .parents
            .iter()
            .filter_map(|p| depth.get(*p as usize).map(|d| d + 1))
            .max()
            .unwrap_or(0);
    }
    let mut row_in_column = vec![0usize; stages.len()];
    let mut seen = std::collections::HashMap::new();
    for (i, d) in depth.iter().enumerate() {
        let n = seen.entry(*d).or_insert(0usize);
        row_in_column[i] = *n;
        *n += 1;
    }
    let (w, h, gx, gy) = (170.0, 54.0, 60.0, 20.0);
    let columns = depth.iter().max().map_or(1, |d| d + 1);
    let rows = seen.values().max().copied().unwrap_or(1);
    let position = |i: usize| {
        (
            10.0 + depth[i] as f64 * (w + gx),
            10.0 + row_in_column[i] as f64 * (h + gy),
        )
    };
    let mut s = format!(
        "<svg class=\"dag\" width=\"{:.0}\" height=\"{:.0}\" role=\"img\" aria-label=\"stages\">\
         <defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" orient=\"auto\">\
         <path d=\"M0,0 L8,4 L0,8 z\" fill=\"#555\"/></marker></defs>",
        20.0 + columns as f64 * (w + gx),
        20.0 + rows as f64 * (h + gy)
    );
    for (i, st) in stages.iter().enumerate() {
        let (x, y) = position(i);
        for p in &st.parents {
            if (*p as usize) < stages.len() {
                let (px, py) = position(*p as usize);
                let _ = write!(
                    s,
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>",
                    px + w,
                    py + h / 2.0,
                    x,
                    y + h / 2.0
                );
            }
        }
        let done = if st.total == 0 {
            0.0
        } else {
            st.done as f64 / st.total as f64
        };
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"#f4f6fa\" stroke=\"#889\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">stage {} ({})</text>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"#dde\"/>\
             <rect class=\"done\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"#2ca02c\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}/{} tasks</text>",
            x + 8.0,
            y + 18.0,
            st.stage,
            escape(&st.output),
            x + 8.0,
            y + 26.0,
            w - 16.0,
            x + 8.0,
            y + 26.0,
            (w - 16.0) * done,
            x + 8.0,
            y + 49.0,
            st.done,
            st.total
        );
    }
    s + "</svg>"
}

fn stages_table(stages: &[proto::StageStatus]) -> String {
    let mut s = String::from(
        "<table><tr><th>stage</th><th>output</th><th>after</th><th>progress</th><th>running</th>\
         <th>rows read</th><th>bytes read</th><th>rows out</th><th>bytes out</th><th>attempts</th></tr>",
    );
    for st in stages {
        let parents: Vec<String> = st.parents.iter().map(u32::to_string).collect();
        let _ = write!(
            s,
            "<tr class=\"stage\"><td>{}</td><td>{}</td><td>{}</td><td><span class=\"progress\">{}/{}</span> {}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            st.stage,
            escape(&st.output),
            parents.join(", "),
            st.done,
            st.total,
            bar(st.done, st.total),
            st.running,
            st.read_rows,
            human_bytes(st.read_bytes),
            st.rows,
            human_bytes(st.bytes),
            st.attempts
        );
    }
    s + "</table>"
}

fn tasks_table(tasks: &[TaskRow]) -> String {
    let mut s = String::from(
        "<table><tr><th>stage</th><th>partition</th><th>state</th><th>attempt</th><th>worker</th>\
         <th>duration</th><th>rows read</th><th>bytes read</th><th>rows out</th><th>bytes out</th>\
         <th>attempts started</th><th>failures</th></tr>",
    );
    for t in tasks {
        let mut failures = if t.failed_on.is_empty() {
            t.failures.to_string()
        } else {
            format!("{} (on {})", t.failures, escape(&t.failed_on.join(", ")))
        };
        for e in &t.errors {
            let _ = write!(failures, "<br><small>{}</small>", escape(e));
        }
        let _ = write!(
            s,
            "<tr class=\"task {}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.state,
            t.stage,
            t.partition,
            t.state,
            t.attempt,
            escape(&t.worker),
            t.millis
                .map_or(String::new(), |ms| format!("{:.2} s", ms as f64 / 1000.0)),
            t.read.map_or(String::new(), |r| r.rows.to_string()),
            t.read.map_or(String::new(), |r| human_bytes(r.bytes)),
            t.rows.map_or(String::new(), |r| r.to_string()),
            t.bytes.map_or(String::new(), human_bytes),
            t.attempts,
            failures
        );
    }
    s + "</table>"
}

/// Each worker's task attempts over time: a row per worker, a bar per attempt coloured by
/// stage (a failed one outlined in red, a running one open-ended at `now`).
fn timeline(attempts: &[(crate::observed::AttemptKey, crate::observed::AttemptSeen)], now: u64) -> String {
    const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];
    if attempts.is_empty() {
        return "<p class=\"note\">No attempts seen by this driver.</p>".to_string();
    }
    let mut workers: Vec<&str> = attempts.iter().map(|(_, s)| s.worker.as_str()).collect();
    workers.sort_unstable();
    workers.dedup();
    let start = attempts.iter().map(|(_, s)| s.started_ms).min().unwrap_or(now);
    let end = attempts
        .iter()
        .map(|(_, s)| s.ended_ms.unwrap_or(now))
        .max()
        .unwrap_or(now)
        .max(start + 1);
    let (label, width, lane) = (90.0, 800.0, 22.0);
    let x = |ms: u64| label + (ms.saturating_sub(start)) as f64 / (end - start) as f64 * (width - label - 10.0);
    let mut s = format!(
        "<svg class=\"timeline\" width=\"{width}\" height=\"{:.0}\" role=\"img\" aria-label=\"tasks per worker over time\">",
        lane * workers.len() as f64 + 30.0
    );
    for (i, w) in workers.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            lane * i as f64 + 15.0,
            escape(w)
        );
    }
    for (key, seen) in attempts {
        let Some(row) = workers.iter().position(|w| *w == seen.worker) else {
            continue;
        };
        let (x0, x1) = (x(seen.started_ms), x(seen.ended_ms.unwrap_or(now)));
        let stroke = if seen.error.is_some() { "#d00" } else { "none" };
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" stroke=\"{stroke}\" stroke-width=\"2\" opacity=\"0.8\">\
             <title>stage {} task {} attempt {}</title></rect>",
            lane * row as f64 + 3.0,
            (x1 - x0).max(1.0),
            lane - 6.0,
            COLORS[key.stage as usize % COLORS.len()],
            key.stage,
            key.task,
            key.attempt
        );
    }
    let _ = write!(
        s,
        "<text x=\"{label}\" y=\"{:.1}\" font-size=\"11\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{:.2} s</text>",
        lane * workers.len() as f64 + 20.0,
        width - 10.0,
        lane * workers.len() as f64 + 20.0,
        (end - start) as f64 / 1000.0
    );
    s + "</svg>"
}

/// A progress bar of `done` out of `total`.
fn bar(done: u32, total: u32) -> String {
    let fraction = if total == 0 { 0.0 } else { done as f64 / total as f64 };
    format!(
        "<svg width=\"100\" height=\"10\"><rect width=\"100\" height=\"10\" fill=\"#dde\"/>\
         <rect width=\"{:.1}\" height=\"10\" fill=\"#2ca02c\"/></svg>",
        100.0 * fraction
    )
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// A Unix time in milliseconds as UTC.
fn when(ms: u64) -> String {
    format!("{} UTC", ringleader_core::clock::utc(ms))
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `body` under `title`, reloading every `refresh` seconds if given.
fn page(title: &str, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>{}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccd;padding:3px 8px;text-align:left;font-size:13px}} th{{background:#eef}}\
         .state.failed,.state.cancelled{{color:#b00}} .state.succeeded{{color:#070}} .note{{color:#666}}\
         small{{color:#666;font-weight:normal}}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_times_are_utc() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_764_892_800_000 + 3_723_000), "2025-12-05 01:02:03 UTC");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn the_timeline_has_a_lane_per_worker_and_a_bar_per_attempt() {
        use crate::observed::{AttemptKey, AttemptSeen};
        let attempt = |task, attempt, worker: &str, started_ms, ended_ms, error: Option<&str>| {
            (
                AttemptKey::new("job-000001", 0, task, attempt),
                AttemptSeen {
                    worker: worker.into(),
                    started_ms,
                    ended_ms,
                    error: error.map(str::to_string),
                },
            )
        };
        let attempts = [
            attempt(0, 1, "worker-1", 1_000, Some(2_000), Some("boom")),
            attempt(0, 2, "worker-2", 2_000, Some(3_000), None),
            attempt(1, 1, "worker-1", 1_000, None, None),
        ];
        let svg = timeline(&attempts, 4_000);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("stroke=\"#d00\"").count(), 1, "the failed attempt");
        assert!(svg.contains(">worker-1<") && svg.contains(">worker-2<"));
        assert!(svg.contains("3.00 s"), "from the first start to now");
    }

    #[test]
    fn a_dag_draws_a_box_per_stage_and_an_arrow_per_parent() {
        let stage = |stage: u32, parents: Vec<u32>| proto::StageStatus {
            stage,
            output: "shuffle".into(),
            parents,
            done: 1,
            total: 2,
            ..Default::default()
        };
        let svg = stage_dag(&[stage(0, vec![]), stage(1, vec![]), stage(2, vec![0, 1])]);
        assert_eq!(svg.matches("<line").count(), 2);
        assert_eq!(svg.matches("class=\"done\"").count(), 3);
        assert!(svg.contains("1/2 tasks"));
    }
}
