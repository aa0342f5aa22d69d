//! Executors are tenants: a running executor (real processes from `cluster up`) holds a
//! credential for its own job, never the cluster token, and every service refuses what
//! that credential may not do: the driver, the worker and Raft refuse it outright; its
//! worker's task queue and Flight refuse it for any other job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ringleader_core::proto;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::{LocalCluster, args, numbered_text, straggler_pid, wait_bounded};

/// Sends one fixed credential.
#[derive(Clone)]
struct Credential(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Credential {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Credential>;

/// The environment of process `pid`.
fn environment(pid: u32) -> HashMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The code a call ended with (`Ok` as `Code::Ok`).
fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Starts the `chaos` job on `cluster` over `d("text")` into `d("out")`, one task of which
/// straggles (its first attempt sleeps `straggle_ms` inside its closure), and waits until
/// it does. Returns the job's client and the straggling executor's environment.
fn held_by_a_straggler(
    cluster: &LocalCluster,
    d: &dyn Fn(&str) -> PathBuf,
    straggle_ms: u64,
) -> (std::process::Child, HashMap<String, String>) {
    std::fs::create_dir(d("straggler")).unwrap();
    let extra = args![
        "--input",
        d("text"),
        "--output",
        d("out"),
        "--straggle",
        "l1_0",
        "--straggle-ms",
        straggle_ms.to_string(),
        "--straggle-dir",
        d("straggler")
    ];
    let client = cluster.spawn("chaos", &extra, &d("log"));
    let env = environment(straggler_pid(&d("straggler")));
    (client, env)
}

#[test]
fn an_executor_holds_a_credential_for_its_own_job_and_every_service_refuses_the_rest() {
    let cluster = LocalCluster::up(1, 1);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 4, 5);
    // One task stalls long enough to look at its executor.
    let (mut client, env) = held_by_a_straggler(&cluster, &d, 60_000);
    let job = env["RINGLEADER_EXECUTOR_JOB"].clone();
    let worker = env["RINGLEADER_EXECUTOR"].clone();
    let held = env["RINGLEADER_TOKEN"].clone();
    let token = ringleader_core::security::auth::read_token_file(&cluster.token()).unwrap();
    assert_ne!(held, token, "the executor holds the cluster token");
    assert!(
        !env.values().any(|v| v.contains(&token)),
        "the cluster token is in the executor's environment"
    );
    assert_eq!(held, ringleader_core::security::auth::credential_for(&token, &job));
    // Its worker caps its memory budget (`cluster up` gives each worker a share of the machine).
    let cap: u64 = env["RINGLEADER_WORKER_MEMORY"].parse().unwrap();
    assert!(cap > 0 && cap <= 2 << 30, "{cap}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channel = |address: &str| -> Authed {
        let channel = runtime
            .block_on(
                tonic::transport::Endpoint::from_shared(format!("http://{address}"))
                    .unwrap()
                    .connect(),
            )
            .unwrap();
        InterceptedService::new(channel, Credential(format!("Bearer {held}").parse().unwrap()))
    };
    let other = "another-job";
    let mut driver = proto::driver_client::DriverClient::new(channel(&cluster.master));
    let mut raft = proto::raft_transport_client::RaftTransportClient::new(channel(&cluster.master));
    let mut daemon = proto::worker_client::WorkerClient::new(channel(&worker));
    let mut queue = proto::executor_client::ExecutorClient::new(channel(&worker));
    let mut flight = arrow_flight::flight_service_client::FlightServiceClient::new(channel(&worker));
    let job_id = |job: &str| proto::JobId {
        job_id: job.to_string(),
    };

    // Services an executor has no business calling refuse its credential outright.
    let refused = [
        (
            "driver: list jobs",
            code(runtime.block_on(driver.list_jobs(proto::ListJobsRequest {}))),
        ),
        (
            "driver: cancel its own job",
            code(runtime.block_on(driver.cancel_job(proto::CancelJobRequest {
                job_id: job.clone(),
                reason: "rogue".into(),
            }))),
        ),
        (
            "driver: report a task",
            code(
                runtime.block_on(driver.report_task(futures::stream::iter([proto::TaskReport {
                    job_id: job.clone(),
                    ..Default::default()
                }]))),
            ),
        ),
        (
            "raft: vote",
            code(runtime.block_on(raft.vote(proto::RaftMessage { data: vec![] }))),
        ),
        (
            "worker: stop a job",
            code(runtime.block_on(daemon.stop_job(job_id(other)))),
        ),
        (
            "worker: launch a task",
            code(runtime.block_on(daemon.launch_task(proto::TaskAssignment {
                job_id: job.clone(),
                ..Default::default()
            }))),
        ),
        // Its worker's task queue and Flight refuse it for another job.
        (
            "executor: take another job's tasks",
            code(runtime.block_on(queue.next_tasks(proto::ExecutorHello {
                job_id: other.into(),
                pid: 1,
            }))),
        ),
        (
            "executor: report another job's task",
            code(
                runtime.block_on(queue.task_finished(futures::stream::iter([proto::TaskReport {
                    job_id: other.into(),
                    ..Default::default()
                }]))),
            ),
        ),
        (
            "flight: read another job's shuffle block",
            code(runtime.block_on(flight.do_get(arrow_flight::Ticket::new(block_ticket(other, 0))))),
        ),
        // A partition of a dataset its job does not write (it writes none): no grant.
        (
            "flight: store a partition of another dataset",
            code(runtime.block_on(async {
                let descriptor = arrow_flight::FlightDescriptor::new_path(
                    ["dataset", "victim", "g0123", "0"].map(String::from).to_vec(),
                );
                let first = arrow_flight::FlightData::new().with_descriptor(descriptor);
                let mut replies = flight.do_put(futures::stream::iter([first])).await?.into_inner();
                replies.message().await
            })),
        ),
    ];
    for (what, got) in refused {
        assert_eq!(got, Code::PermissionDenied, "{what}");
    }
    // Its own job passes the credential check (and then finds nothing to serve).
    let own_block = runtime.block_on(async {
        let mut stream = flight
            .do_get(arrow_flight::Ticket::new(block_ticket(&job, 99)))
            .await?
            .into_inner();
        stream.message().await
    });
    assert_eq!(code(own_block), Code::NotFound, "reading its own job's (missing) block");
    let own_queue = code(runtime.block_on(queue.next_tasks(proto::ExecutorHello {
        job_id: job.clone(),
        pid: 1,
    })));
    assert_eq!(
        own_queue,
        Code::FailedPrecondition,
        "its own job's queue (already taken)"
    );
    // A forged credential for another job is no credential at all.
    let forged = held.replacen(&job, other, 1);
    let mut forged_queue = proto::executor_client::ExecutorClient::new(InterceptedService::new(
        runtime
            .block_on(
                tonic::transport::Endpoint::from_shared(format!("http://{worker}"))
                    .unwrap()
                    .connect(),
            )
            .unwrap(),
        Credential(format!("Bearer {forged}").parse().unwrap()),
    ));
    let got = code(runtime.block_on(forged_queue.next_tasks(proto::ExecutorHello {
        job_id: other.into(),
        pid: 1,
    })));
    assert_eq!(got, Code::Unauthenticated, "a forged credential");

    // Nothing of this disturbed the job: cancel it, and it ends.
    let out = cluster.ringleader(&["cancel", &job]);
    assert!(out.status.success(), "cancel: {}", String::from_utf8_lossy(&out.stderr));
    wait_bounded(&mut client, Duration::from_secs(60));
}

#[test]
fn the_raft_service_admits_only_the_other_drivers_of_its_group_even_with_the_cluster_token() {
    use ringleader_driver::raft::group::Peers;
    use ringleader_driver::raft::network::{CLUSTER_KEY, NODE_KEY};
    let cluster = LocalCluster::up(3, 1);
    let peers: Vec<String> = (0..3)
        .map(|i| format!("{}={}", i + 1, cluster.driver_address(i)))
        .collect();
    let fingerprint = Peers::parse(&peers.join(",")).unwrap().fingerprint();
    let token = ringleader_core::security::auth::read_token_file(&cluster.token()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let driver_1 = runtime
        .block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.driver_address(0)))
                .unwrap()
                .connect(),
        )
        .unwrap();
    // A Raft vote to driver 1 with the cluster token and these group tags.
    let vote = |group: Option<&str>, node: Option<&str>, token: Option<&str>| {
        let mut raft = proto::raft_transport_client::RaftTransportClient::new(driver_1.clone());
        let mut request = tonic::Request::new(proto::RaftMessage { data: vec![] });
        let metadata = request.metadata_mut();
        if let Some(token) = token {
            metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        if let Some(group) = group {
            metadata.insert(CLUSTER_KEY, group.parse().unwrap());
        }
        if let Some(node) = node {
            metadata.insert(NODE_KEY, node.parse().unwrap());
        }
        match runtime.block_on(raft.vote(request)) {
            Ok(_) => (Code::Ok, String::new()),
            Err(status) => (status.code(), status.message().to_string()),
        }
    };
    let token = Some(token.as_str());
    let group = Some(fingerprint.as_str());
    // Without the token: not even asked who it is.
    assert_eq!(vote(group, Some("2"), None).0, Code::Unauthenticated);
    // The token, but not a driver of this group.
    let (code, message) = vote(None, Some("2"), token);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("different group"), "{message}");
    let (code, message) = vote(Some("0123456789abcdef"), Some("2"), token);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    for node in [None, Some("9"), Some("1"), Some("two")] {
        let (code, message) = vote(group, node, token);
        assert_eq!(code, Code::PermissionDenied, "node {node:?}: {message}");
        assert!(message.contains("not another driver"), "{message}");
    }
    // Driver 2 of this group is admitted: its (empty) message is then refused as malformed.
    let (code, message) = vote(group, Some("2"), token);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("malformed Raft message"), "{message}");
}

/// Files under `root` whose path, relative to it, matches every part of `parts` in order.
fn files_matching(root: &std::path::Path, parts: &[&str]) -> Vec<PathBuf> {
    crate::helpers::files_under(root)
        .into_iter()
        .filter(|p| {
            let text = p.strip_prefix(root).unwrap_or(p).to_string_lossy().into_owned();
            let mut rest = text.as_str();
            parts.iter().all(|part| match rest.find(part) {
                Some(at) => {
                    rest = &rest[at + part.len()..];
                    true
                }
                None => false,
            })
        })
        .collect()
}

#[test]
fn a_hostile_job_reaches_nothing_of_the_cluster_or_of_other_jobs_while_a_normal_job_beside_it_succeeds() {
    let cluster = LocalCluster::up_with(1, 2, 2, &["--speculation-multiplier", "0"]);
    if !cluster.worker_log(0).contains("Landlock sandbox") {
        crate::helpers::skip("hostile job", "this kernel has no Landlock");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 4, 50);
    cluster.put("victim", 2, 2, &d("text"));
    // A job that ran before: its binary stays cached on the workers (and no longer runs).
    let earlier = cluster.run("wordcount", &args!["--input", d("text"), "--output", d("earlier")]);
    assert!(earlier.status.success(), "{}", String::from_utf8_lossy(&earlier.stderr));
    let earlier_binary = ringleader_core::net::binary::hash_file(&crate::helpers::example("wordcount")).unwrap();
    // A normal job, held mid-map by one straggling task: its other map outputs are on disk.
    let (mut client, env) = held_by_a_straggler(&cluster, &d, 6_000);
    let job = env["RINGLEADER_EXECUTOR_JOB"].clone();
    let root = cluster.dir.path();
    let committed_blocks = || -> Vec<PathBuf> {
        files_matching(root, &["worker-", "/shuffle/", &job, "/map-", "/part-"])
            .into_iter()
            // Committed map outputs only (not a directory still being written, `….tmp`).
            .filter(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| !n.to_string_lossy().ends_with(".tmp"))
            })
            .collect()
    };
    crate::helpers::eventually(
        Duration::from_secs(30),
        "another map task of the normal job committed",
        || !committed_blocks().is_empty(),
    );
    let blocks = committed_blocks();
    let partitions = files_matching(root, &["worker-", "/datasets/victim/", "/part-"]);
    let binaries = files_matching(root, &["worker-", "/binaries/", &earlier_binary]);
    assert!(!blocks.is_empty() && !partitions.is_empty() && !binaries.is_empty());
    let before: Vec<Vec<u8>> = partitions
        .iter()
        .chain(&binaries)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut hostile = args!["--cluster-dir", root, "--tasks", "4"].to_vec();
    for block in &blocks[..1] {
        hostile.extend(args!["--read", block]);
    }
    for file in partitions.iter().chain(&binaries) {
        hostile.extend(args!["--write", file, "--delete", file]);
    }
    let out = cluster.run("hostile", &hostile);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Every probe of every task ran, and was refused.
    let probes_per_task = 9 + 1 + 2 * (partitions.len() + binaries.len());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4 * probes_per_task, "{stdout}");
    // Refused by the kernel, not missed: every file it named is there.
    let reached: Vec<&&str> = lines
        .iter()
        .filter(|l| !l.contains(" refused: Permission denied") && !l.contains(" refused: Operation not permitted"))
        .collect();
    assert!(reached.is_empty(), "the hostile job reached:\n{reached:#?}");
    assert!(
        blocks[0].exists(),
        "the normal job's map output is gone: it was not running beside"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("read the token refused: Permission denied"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("signal the worker refused: Operation not permitted"))
    );
    // Nothing it tried changed anything, and the normal job beside it is right.
    let after: Vec<Vec<u8>> = partitions
        .iter()
        .chain(&binaries)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(before == after, "a stored partition or a cached binary changed");
    let status = wait_bounded(&mut client, Duration::from_secs(120));
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(d("log")).unwrap_or_default()
    );
    assert_eq!(
        crate::helpers::sorted_lines(&d("out")),
        crate::oracles::word_counts(&d("text"))
    );
    let got = cluster.ringleader(&["get", "victim", d("got").to_str().unwrap()]);
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    assert_eq!(
        crate::oracles::lines_under(&d("got")),
        crate::oracles::lines_under(&d("text"))
    );
}

#[test]
fn a_cached_binary_changed_on_disk_is_hashed_again_and_fetched_anew() {
    let cluster = LocalCluster::up(1, 1);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 2, 20);
    let run = |out: &str| {
        let ran = cluster.run("wordcount", &args!["--input", d("text"), "--output", d(out)]);
        assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
        assert_eq!(
            crate::helpers::sorted_lines(&d(out)),
            crate::oracles::word_counts(&d("text"))
        );
    };
    run("first");
    let hash = ringleader_core::net::binary::hash_file(&crate::helpers::example("wordcount")).unwrap();
    let cached = cluster.dir.path().join("worker-1/binaries").join(&hash);
    // Changed behind the worker's back (its executor gone, the file is writable again).
    crate::helpers::eventually(Duration::from_secs(20), "the cached binary can be written", || {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&cached)
            .and_then(|mut f| f.write_all(b"tampered"))
            .is_ok()
    });
    assert_ne!(ringleader_core::net::binary::hash_file(&cached).unwrap(), hash);
    run("second");
    assert!(
        cluster.worker_log(0).contains("no longer matches its hash"),
        "{}",
        cluster.worker_log(0)
    );
    assert_eq!(ringleader_core::net::binary::hash_file(&cached).unwrap(), hash);
}

#[test]
fn inside_the_sandbox_a_job_still_reads_its_map_outputs_on_this_machine_from_disk() {
    let cluster = LocalCluster::up(1, 2);
    let data = tempfile::tempdir().unwrap();
    let d = |name: &str| -> PathBuf { data.path().join(name) };
    numbered_text(&d("text"), 6, 200);
    let ran = cluster.run("wordcount", &args!["--input", d("text"), "--output", d("out")]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(
        crate::helpers::sorted_lines(&d("out")),
        crate::oracles::word_counts(&d("text"))
    );
    // Both workers wrote map output, and neither served any of it over Flight: each
    // executor read the other worker's blocks from its disk, as granted.
    for w in 0..2 {
        assert!(cluster.worker_metric(w, "ringleader_worker_shuffle_written_bytes_total") > 0.0);
        assert_eq!(
            cluster.worker_metric(w, "ringleader_worker_flight_served_bytes_total"),
            0.0
        );
    }
    // Over Flight when told to, which shows the counter counts.
    let flight = cluster.run_over_flight("wordcount", &args!["--input", d("text"), "--output", d("flight")]);
    assert!(flight.status.success(), "{}", String::from_utf8_lossy(&flight.stderr));
    let served: f64 = (0..2)
        .map(|w| cluster.worker_metric(w, "ringleader_worker_flight_served_bytes_total"))
        .sum();
    assert!(served > 0.0);
}

#[test]
fn without_the_sandbox_the_hostile_jobs_probes_do_reach_what_they_try() {
    // The probes are real: on a worker started with --no-sandbox (as on a kernel without
    // Landlock) the same job reads the token and writes among the datasets.
    let cluster = LocalCluster::up_with(1, 1, 2, &["--no-sandbox"]);
    assert!(
        cluster.worker_log(0).contains("--no-sandbox"),
        "{}",
        cluster.worker_log(0)
    );
    let out = cluster.run("hostile", &args!["--cluster-dir", cluster.dir.path(), "--tasks", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("read the token reached"), "{stdout}");
    assert!(stdout.contains("add a cached binary reached"), "{stdout}");
    assert!(stdout.contains("list the shuffle directory reached"), "{stdout}");
    assert!(
        stdout.contains("make a symbolic link where the worker serves from reached"),
        "{stdout}"
    );
}

/// The Flight ticket of map task 0's block `partition` of `job`'s first shuffle.
fn block_ticket(job: &str, partition: u32) -> Vec<u8> {
    use ringleader_core::ids::{Attempt, ShuffleId, TaskId};
    ringleader_core::net::ticket::FlightTicket::Block(ringleader_core::net::ticket::BlockId {
        job: job.into(),
        shuffle: ShuffleId(0),
        map: TaskId(0),
        attempt: Attempt(0),
        partition: TaskId(partition),
    })
    .encode()
}
