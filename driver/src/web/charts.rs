//! The status pages' pictures, as inline SVG: the ring, a job's stages as a DAG, the
//! attempts per worker over time, and progress bars. Every SVG element is closed
//! explicitly (`{}`): inside HTML, an SVG tag left open would swallow the ones after it.

use maud::{Markup, html};
use ringleader_core::proto;

use crate::attempt_clock::AttemptSeen;
use ringleader_core::ids::AttemptKey;

/// Colours of workers on the ring and of stages on the timeline, in turn.
const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf"];

/// `x` with one decimal, as SVG coordinates are written here.
fn at(x: f64) -> String {
    format!("{x:.1}")
}

/// The ring as a circle: each worker's share as an arc of its own colour, with a legend.
pub(super) fn ring(workers: &[proto::WorkerStatus]) -> Markup {
    let (cx, cy, r) = (90.0, 90.0, 70.0);
    let point = |f: f64| {
        let a = f * std::f64::consts::TAU - std::f64::consts::FRAC_PI_2;
        (cx + r * a.cos(), cy + r * a.sin())
    };
    let mut arcs = Vec::new();
    let mut start = 0.0f64;
    for (i, w) in workers.iter().enumerate() {
        let share = w.ring_share.clamp(0.0, 1.0);
        if share <= 0.0 {
            continue;
        }
        let end = start + share;
        let ((x0, y0), (x1, y1)) = (point(start), point(end.min(0.9999)));
        let large = u8::from(share > 0.5);
        let path = format!("M {x0:.1} {y0:.1} A {r} {r} 0 {large} 1 {x1:.1} {y1:.1}");
        arcs.push((i, path, COLORS[i % COLORS.len()], &w.worker_id, share));
        start = end;
    }
    html! {
        svg width="420" height="180" role="img" aria-label="the ring" {
            @for (i, path, color, worker, share) in &arcs {
                path d=(path) stroke=(color) stroke-width="18" fill="none" {}
                rect x="200" y=(20 + 18 * i) width="12" height="12" fill=(color) {}
                text x="218" y=(30 + 18 * i) { (worker) " (" (format!("{:.1}", share * 100.0)) "%)" }
            }
        }
    }
}

/// The stages as a DAG: a box per stage with its progress, in columns by depth, an arrow
/// from each parent.
pub(super) fn stage_dag(stages: &[proto::StageStatus]) -> Markup {
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
    let done = |st: &proto::StageStatus| {
        if st.total == 0 {
            0.0
        } else {
            st.done as f64 / st.total as f64
        }
    };
    html! {
        svg class="dag" width=(format!("{:.0}", 20.0 + columns as f64 * (w + gx)))
            height=(format!("{:.0}", 20.0 + rows as f64 * (h + gy))) role="img" aria-label="stages" {
            defs {
                marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto" {
                    path d="M0,0 L8,4 L0,8 z" fill="#555" {}
                }
            }
            @for (i, st) in stages.iter().enumerate() {
                @let (x, y) = position(i);
                @for p in st.parents.iter().filter(|p| (**p as usize) < stages.len()) {
                    @let (px, py) = position(*p as usize);
                    line x1=(at(px + w)) y1=(at(py + h / 2.0)) x2=(at(x)) y2=(at(y + h / 2.0))
                        stroke="#555" marker-end="url(#arrow)" {}
                }
                rect x=(at(x)) y=(at(y)) width=(w) height=(h) rx="6" fill="#f4f6fa" stroke="#889" {}
                text x=(at(x + 8.0)) y=(at(y + 18.0)) { "stage " (st.stage) " (" (st.output) ")" }
                rect x=(at(x + 8.0)) y=(at(y + 26.0)) width=(at(w - 16.0)) height="10" fill="#dde" {}
                rect class="done" x=(at(x + 8.0)) y=(at(y + 26.0)) width=(at((w - 16.0) * done(st)))
                    height="10" fill="#2ca02c" {}
                text x=(at(x + 8.0)) y=(at(y + 49.0)) font-size="11" { (st.done) "/" (st.total) " tasks" }
            }
        }
    }
}

/// Each worker's task attempts over time: a row per worker, a bar per attempt coloured by
/// stage (a failed one outlined in red, a running one open-ended at `now`).
pub(super) fn timeline(attempts: &[(AttemptKey, AttemptSeen)], now: u64) -> Markup {
    if attempts.is_empty() {
        return html! { p class="note" { "No attempts seen by this driver." } };
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
    let bottom = lane * workers.len() as f64 + 20.0;
    html! {
        svg class="timeline" width=(width) height=(format!("{:.0}", bottom + 10.0)) role="img"
            aria-label="tasks per worker over time" {
            @for (i, w) in workers.iter().enumerate() {
                text x="4" y=(at(lane * i as f64 + 15.0)) font-size="12" { (w) }
            }
            @for (key, seen) in attempts {
                @if let Some(row) = workers.iter().position(|w| seen.worker == *w) {
                    @let (x0, x1) = (x(seen.started_ms), x(seen.ended_ms.unwrap_or(now)));
                    rect x=(at(x0)) y=(at(lane * row as f64 + 3.0)) width=(at((x1 - x0).max(1.0)))
                        height=(at(lane - 6.0)) fill=(COLORS[key.stage.index() % COLORS.len()])
                        stroke=(if seen.error.is_some() { "#d00" } else { "none" }) stroke-width="2" opacity="0.8" {
                        title { "stage " (key.stage) " task " (key.task) " attempt " (key.attempt) }
                    }
                }
            }
            text x=(label) y=(at(bottom)) font-size="11" { "0 s" }
            text x=(at(width - 10.0)) y=(at(bottom)) font-size="11" text-anchor="end" {
                (format!("{:.2} s", (end - start) as f64 / 1000.0))
            }
        }
    }
}

/// A progress bar of `done` out of `total`.
pub(super) fn bar(done: u32, total: u32) -> Markup {
    let fraction = if total == 0 { 0.0 } else { done as f64 / total as f64 };
    html! {
        svg width="100" height="10" {
            rect width="100" height="10" fill="#dde" {}
            rect width=(at(100.0 * fraction)) height="10" fill="#2ca02c" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_has_a_lane_per_worker_and_a_bar_per_attempt() {
        use ringleader_core::ids::{Attempt, StageId, TaskId};
        let attempt = |task, attempt, worker: &str, started_ms, ended_ms, error: Option<&str>| {
            (
                AttemptKey::new("job-000001", StageId(0), TaskId(task), Attempt(attempt)),
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
        let svg = timeline(&attempts, 4_000).into_string();
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
        let svg = stage_dag(&[stage(0, vec![]), stage(1, vec![]), stage(2, vec![0, 1])]).into_string();
        assert_eq!(svg.matches("<line").count(), 2);
        assert_eq!(svg.matches("class=\"done\"").count(), 3);
        assert!(svg.contains("1/2 tasks"));
        assert_eq!(
            svg.matches("<rect").count(),
            svg.matches("</rect>").count(),
            "every shape closed"
        );
    }

    #[test]
    fn the_ring_draws_an_arc_per_worker_with_a_share_and_escapes_names() {
        let worker = |id: &str, ring_share| proto::WorkerStatus {
            worker_id: id.into(),
            ring_share,
            ..Default::default()
        };
        let svg = ring(&[worker("w<1>", 0.25), worker("w2", 0.75), worker("idle", 0.0)]).into_string();
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(
            svg.contains("w&lt;1&gt; (25.0%)") && svg.contains("w2 (75.0%)"),
            "{svg}"
        );
        assert!(!svg.contains("idle"));
    }
}
