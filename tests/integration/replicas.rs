//! Stored partitions audited and repaired on real processes: the leader's repair loop asks
//! every live worker what it holds, so a worker whose data directory was emptied is noticed
//! like a lost one, short partitions are copied until R live workers hold them, and
//! `ringleader datasets --json` and the driver's `/metrics` say what is short and why.

use std::path::Path;
use std::time::Duration;

use ringleader_core::fault_injection::REPAIR_HOLD;

use crate::helpers::{LocalCluster, eventually, kill_now, ok};

/// Per dataset partition, (live replicas, holders, why short) from `datasets --json`.
fn health(cluster: &LocalCluster, name: &str) -> Vec<(Option<u64>, Vec<String>, Option<String>)> {
    let out = ok(cluster.ringleader(&["datasets", "--json"]), "datasets --json");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dataset = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {out}"))
        .clone();
    assert!(dataset["generation"].as_str().is_some_and(|g| !g.is_empty()), "{out}");
    dataset["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            assert_eq!(p["index"].as_u64(), Some(i as u64), "{out}");
            (
                p["live_replicas"].as_u64(),
                p["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap().to_string())
                    .collect(),
                p["short_because"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Whether every partition of `name` is on `replicas` live workers, as audited.
fn whole(cluster: &LocalCluster, name: &str, replicas: u64) -> bool {
    health(cluster, name)
        .iter()
        .all(|(live, holders, short)| *live == Some(replicas) && holders.len() as u64 == replicas && short.is_none())
}

fn text(dir: &Path) {
    ringleader_datasets::text::generate(dir, 60_000, 3, 300, 5, false).unwrap();
}

#[test]
fn a_worker_whose_data_directory_was_emptied_gets_its_copies_back() {
    emptied_disk_is_repaired(text);
}

/// The same with partitions that hold no rows (a dataset of two lines in four partitions):
/// their copies carry the schema (`ringleader chaos --hosts --seed 36001` found them never
/// repaired: "an empty partition needs a schema").
#[test]
fn a_worker_whose_data_directory_was_emptied_gets_its_empty_partitions_back_too() {
    emptied_disk_is_repaired(|dir: &Path| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("two-lines.txt"), "one line\nanother line\n").unwrap();
    });
}

/// Stores `input` as `words` (4 partitions, 2 replicas on 3 workers), empties worker 2's
/// disk, and checks every partition is copied back and reads back whole.
fn emptied_disk_is_repaired(input_of: impl Fn(&Path)) {
    let cluster = LocalCluster::up(1, 3);
    let data = tempfile::tempdir().unwrap();
    let input = data.path().join("text");
    input_of(&input);
    cluster.put("words", 4, 2, &input);
    eventually(
        Duration::from_secs(30),
        "every partition audited on 2 live workers",
        || whole(&cluster, "words", 2),
    );
    // Worker 2 lives on, but its disk lost every stored partition (a replaced disk).
    let held: Vec<u32> = (0..4).filter(|&p| cluster.holders("words", p, &[2]) == 1).collect();
    assert!(!held.is_empty(), "worker 2 held nothing");
    std::fs::remove_dir_all(cluster.dir.path().join("worker-2/datasets")).unwrap();
    // Noticed, and copied back until each partition is on two disks again.
    eventually(
        Duration::from_secs(60),
        "the emptied worker's partitions are copied back",
        || whole(&cluster, "words", 2) && (0..4).all(|p| cluster.holders("words", p, &[1, 2, 3]) == 2),
    );
    let log = cluster.driver_log(0);
    assert!(log.contains("copied words partition"), "{log}");
    // And read back whole.
    let out = data.path().join("got");
    ok(cluster.ringleader(&["get", "words", out.to_str().unwrap()]), "get");
    assert_eq!(crate::oracles::lines_under(&out), crate::oracles::lines_under(&input));
}

#[test]
fn a_lost_workers_partitions_are_reported_short_until_their_copies_are_made() {
    let data = tempfile::tempdir().unwrap();
    let hold = data.path().join("hold-repair");
    let cluster = LocalCluster::up_env(1, 3, 2, &[], &[(REPAIR_HOLD, hold.to_str().unwrap())]);
    let input = data.path().join("text");
    text(&input);
    cluster.put("words", 4, 2, &input);
    eventually(
        Duration::from_secs(30),
        "every partition audited on 2 live workers",
        || whole(&cluster, "words", 2),
    );
    assert_eq!(cluster.driver_metric(0, "ringleader_under_replicated_partitions"), 0.0);
    std::fs::write(&hold, "").unwrap();
    kill_now(cluster.worker_pid(1));
    // Short, with the reason, in the listing and the metric.
    eventually(
        Duration::from_secs(30),
        "the lost worker's partitions are reported short",
        || {
            let found = health(&cluster, "words");
            let short: Vec<_> = found.iter().filter(|(live, _, _)| *live == Some(1)).collect();
            !short.is_empty()
                && short.iter().all(|(_, holders, why)| {
                    holders.len() == 1 && why.as_deref().is_some_and(|w| w.contains("1 of 2 replicas"))
                })
        },
    );
    let short = health(&cluster, "words")
        .iter()
        .filter(|(live, _, _)| *live == Some(1))
        .count();
    assert_eq!(
        cluster.driver_metric(0, "ringleader_under_replicated_partitions"),
        short as f64
    );
    let listing = ok(cluster.ringleader(&["datasets"]), "datasets");
    assert!(
        listing.contains("partitions short of 2 replicas") && listing.contains("(1/2 live)"),
        "{listing}"
    );
    // Copies allowed again: back to two live replicas each, and the metric to zero.
    std::fs::remove_file(&hold).unwrap();
    eventually(Duration::from_secs(60), "the partitions are copied back", || {
        whole(&cluster, "words", 2)
    });
    assert_eq!(cluster.driver_metric(0, "ringleader_under_replicated_partitions"), 0.0);
    let listing = ok(cluster.ringleader(&["datasets"]), "datasets");
    assert!(listing.contains("replicas 2/2"), "{listing}");
}
