//! The drivers' web status page, driven by a real headless Chromium against a live local
//! cluster: the job page of a finished job shows its stages and tasks, a running job's page
//! advances, requests without the token are refused, and a screenshot of each page is
//! written to `target/` for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{Bounded, LocalCluster, args, files_under, http_get as request, numbered_text, ok};

/// Debian's Chromium, which `.ci/run` installs when it is missing.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].into_iter().find_map(|name| {
        let out = Command::new(name).arg("--version").try_bounded()?;
        out.status.success().then(|| PathBuf::from(name))
    })
}

/// The page at `url` as headless Chromium rendered it (its DOM), with a screenshot in
/// `screenshot` if given. A fresh profile each time: no cookie is kept between calls.
fn browse(chromium: &Path, url: &str, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new(chromium);
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1200,1000");
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    command.arg(url);
    let out = crate::helpers::output_bounded(&mut command, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP/1.1 GET with `cookie` as the session cookie: the status code and the body.
fn get(address: &str, path: &str, cookie: Option<&str>) -> (u16, String) {
    let header = cookie.map_or(String::new(), |c| format!("Cookie: ringleader-session={c}\r\n"));
    request(address, path, &header)
}

/// The session cookie the login link `/?token=TOKEN` sets, as a browser would keep it.
fn log_in(address: &str, token: &str) -> String {
    let (code, head, _) = crate::helpers::http_get_with_headers(address, &format!("/?token={token}"), "");
    assert!((300..400).contains(&code), "the login link answered {code}:\n{head}");
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.strip_prefix("ringleader-session="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie set:\n{head}"))
        .to_string()
}

/// "N of M tasks done" on a job page.
fn tasks_done(page: &str) -> Option<(u32, u32)> {
    let at = page.find(" tasks done")?;
    let words: Vec<&str> = page[..at].rsplit([';', '>']).next()?.split_whitespace().collect();
    match words.as_slice() {
        [done, "of", total] => Some((done.parse().ok()?, total.parse().ok()?)),
        _ => None,
    }
}

/// Where screenshots go: the build's `target/`.
fn screenshot(name: &str) -> PathBuf {
    crate::helpers::target_dir().parent().unwrap().join(name)
}

#[test]
fn the_status_page_shows_jobs_stages_and_tasks_in_a_browser_and_needs_the_token() {
    let Some(chromium) = chromium() else {
        crate::helpers::skip("the status page in a browser", "no chromium (.ci/run installs it)");
        return;
    };
    // Screenshots of an earlier run must not pass for this run's.
    for name in ["web-job.png", "web-cluster.png", "web-running-job.png"] {
        let _ = std::fs::remove_file(screenshot(name));
    }
    let cluster = LocalCluster::up(1, 2);
    let web = std::fs::read_to_string(cluster.dir.path().join("driver-1/http-address")).unwrap();
    let web = web.trim();
    let token = std::fs::read_to_string(cluster.token()).unwrap();
    let token = token.trim();

    // Without the token, or with a wrong one: 401 and how to log in, nothing else.
    let (code, body) = get(web, "/", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("?token=") && !body.contains("worker-1"), "{body}");
    assert_eq!(get(web, "/?token=wrong", None).0, 401);
    assert_eq!(get(web, "/jobs/job-000001", Some("wrong")).0, 401);
    // The cookie a login sets is a session value derived from the token, not the token: a
    // browser that sends it to another service on the host gives nothing away, and the
    // token itself is no cookie.
    let session = log_in(web, token);
    assert!(
        session.len() == 64 && !session.contains(token) && !token.contains(&session),
        "{session}"
    );
    assert_eq!(get(web, "/", Some(&session)).0, 200);
    assert_eq!(get(web, "/", Some(token)).0, 401);

    // A finished job: its stages and every task.
    let data = tempfile::tempdir().unwrap();
    let fixtures = crate::helpers::fixtures("text");
    let out = data.path().join("words");
    ok(
        cluster.run("wordcount", &args!["--input", fixtures, "--output", out]),
        "wordcount",
    );
    let page = browse(&chromium, &format!("http://{web}/jobs/job-000001?token={token}"), None);
    assert!(page.contains("succeeded"), "{page}");
    assert!(
        page.contains("stage 0 (shuffle)") && page.contains("stage 1 (result)"),
        "{page}"
    );
    assert!(
        page.contains("<th>rows read</th>") && page.contains("<th>rows out</th>"),
        "{page}"
    );
    let (done, total) = tasks_done(&page).expect("a task count");
    assert_eq!(done, total);
    assert_eq!(
        page.matches("<td class=\"stage-state\">done</td>").count(),
        2,
        "each stage's lifecycle state:\n{page}"
    );
    assert_eq!(
        page.matches("class=\"task done\"").count() as u32,
        total,
        "a row per task"
    );
    browse(
        &chromium,
        &format!("http://{web}/jobs/job-000001?token={token}"),
        Some(&screenshot("web-job.png")),
    );
    let overview = browse(&chromium, &format!("http://{web}/?token={token}"), None);
    assert!(
        overview.contains("worker-1") && overview.contains("worker-2"),
        "{overview}"
    );
    assert!(overview.contains("href=\"/jobs/job-000001\""), "{overview}");
    browse(
        &chromium,
        &format!("http://{web}/?token={token}"),
        Some(&screenshot("web-cluster.png")),
    );

    // Prometheus metrics, with the token as a bearer token.
    assert_eq!(get(web, "/metrics", None).0, 401);
    let (code, metrics) = request(web, "/metrics", &format!("Authorization: Bearer {token}\r\n"));
    assert_eq!(code, 200, "{metrics}");
    for line in [
        "ringleader_worker_up{worker=\"worker-1\"} 1",
        "ringleader_worker_up{worker=\"worker-2\"} 1",
        "ringleader_jobs{state=\"succeeded\"} 1",
        "ringleader_driver_is_leader 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in:\n{metrics}");
    }
    let attempts: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringleader_task_attempts_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(attempts >= f64::from(total), "{metrics}");

    // Each worker's own metrics, also behind the token.
    let (mut succeeded, mut rows_read, mut shuffled) = (0.0, 0.0, 0.0);
    for worker in ["worker-1", "worker-2"] {
        let at = std::fs::read_to_string(cluster.dir.path().join(worker).join("http-address")).unwrap();
        let at = at.trim();
        assert_eq!(get(at, "/metrics", None).0, 401);
        let (code, metrics) = request(at, "/metrics", &format!("Authorization: Bearer {token}\r\n"));
        assert_eq!(code, 200, "{metrics}");
        // The value of `name`'s sample whose labels contain `label`.
        let value = |name: &str, label: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
                .find_map(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
        };
        succeeded += value("ringleader_worker_tasks_total", "outcome=\"succeeded\"");
        rows_read += value("ringleader_worker_read_rows_total", "worker=");
        shuffled += value("ringleader_worker_shuffle_written_bytes_total", "worker=");
        let age = value("ringleader_worker_heartbeat_age_seconds", "worker=");
        assert!((0.0..10.0).contains(&age), "{metrics}");
    }
    assert!(
        succeeded >= f64::from(total),
        "every task of the job reported through a worker"
    );
    let lines: usize = files_under(&fixtures)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert!(
        rows_read >= lines as f64,
        "the map tasks read every line: {rows_read} < {lines}"
    );
    // The word count's map stage wrote its counts into a shuffle, counted as the workers
    // passed its tasks' reports on (at least a byte per distinct word).
    assert!(shuffled >= 1884.0, "shuffled only {shuffled} bytes");

    // A page name that is no job id still gets an answer (the login goes back to the list).
    let (code, _) = get(web, &format!("/jobs/a%0d%0ab?token={token}"), None);
    assert_eq!(code, 303);
    // An unknown job: 404, with the way back to the list.
    let (code, body) = get(web, "/jobs/job-999999", Some(&session));
    assert_eq!(code, 404);
    assert!(body.contains("href=\"/\""), "{body}");

    // A running job: its page advances.
    let slow = data.path().join("slow");
    numbered_text(&slow, 8, 40);
    let log = data.path().join("slow.log");
    let mut job = cluster.spawn(
        "chaos",
        &args![
            "--input",
            &slow,
            "--output",
            data.path().join("slow-out"),
            "--sleep-ms",
            "40"
        ],
        &log,
    );
    let url = format!("http://{web}/jobs/job-000002?token={token}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<(u32, u32)> = Vec::new();
    while Instant::now() < deadline {
        let page = browse(&chromium, &url, None);
        if let Some(count) = tasks_done(&page) {
            if page.contains("class=\"state running\"") && seen.is_empty() && count.0 < count.1 {
                browse(&chromium, &url, Some(&screenshot("web-running-job.png")));
                seen.push(count);
            } else if !seen.is_empty() && count.0 > seen[0].0 {
                seen.push(count);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = crate::helpers::wait_bounded(&mut job, Duration::from_secs(60));
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(seen.len(), 2, "the running job's page did not advance: {seen:?}");
    for name in ["web-job.png", "web-cluster.png", "web-running-job.png"] {
        let bytes = std::fs::read(screenshot(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{name}");
    }
}
