//! The replicated state as the protocol shows it: job and stage progress, dataset
//! placement, and one driver's view of its Raft group.

use ringleader_core::ids::WorkerId;
use ringleader_core::plan::{StageOutput, Volume};
use ringleader_core::proto;

use crate::attempt_clock::AttemptSeen;
use crate::leader::PartitionHealth;
use crate::raft::group::Peers;
use crate::state::{ClusterState, DatasetRecord, JobRecord, JobState, StageRecord, TaskState};
use ringleader_core::ids::AttemptKey;

/// Rows and bytes the finished tasks of `stage` read, and the rows and bytes they produced.
fn volumes(stage: &StageRecord) -> (Volume, Volume) {
    let (mut read, mut written) = (Volume::default(), Volume::default());
    for t in stage.states() {
        if let TaskState::Done { value, read: r, .. } = t {
            read = read.plus(*r);
            let (rows, bytes) = value.volume();
            written = written.plus(Volume {
                rows: rows.unwrap_or(0),
                bytes: bytes.unwrap_or(0),
            });
        }
    }
    (read, written)
}

/// Progress of one stage, as streamed to the job's client.
pub fn stage_progress(record: &JobRecord, stage: u32) -> proto::StageProgress {
    let empty = StageRecord::default();
    let record_of_stage = record.stages.get(stage as usize).unwrap_or(&empty);
    let (read, written) = volumes(record_of_stage);
    proto::StageProgress {
        stage,
        done: record_of_stage.done(),
        total: record_of_stage.tasks.len() as u32,
        rows: written.rows,
        bytes: written.bytes,
        read_rows: read.rows,
        read_bytes: read.bytes,
        attempts: record_of_stage.attempts(),
    }
}

/// One line of `ringleader jobs`.
pub fn job_status(j: &JobRecord) -> proto::JobStatus {
    let (done, total) = j.progress();
    let message = match &j.state {
        JobState::Failed(m) | JobState::Cancelled(m) => m.clone(),
        _ => String::new(),
    };
    proto::JobStatus {
        job_id: j.id.to_string(),
        name: j.name.clone(),
        state: j.state.name().to_string(),
        stages: j.stages.len() as u32,
        tasks_done: done,
        tasks_total: total,
        submitted_ms: j.submitted_ms,
        message,
    }
}

/// Every job's line of `ringleader jobs`, oldest first.
pub fn job_statuses(state: &ClusterState) -> Vec<proto::JobStatus> {
    state.jobs_in_order(|_| true).into_iter().map(job_status).collect()
}

/// `ringleader job ID`: the job, each of its stages, and the failed attempts this driver
/// saw end (`seen`: its attempts as [`crate::attempt_clock::AttemptClock::of_job`] lists them).
pub fn job_detail(j: &JobRecord, seen: &[(AttemptKey, AttemptSeen)]) -> proto::JobDetail {
    let stage_times = |stage: usize| {
        let attempts = seen.iter().filter(|(k, _)| k.stage.index() == stage).map(|(_, s)| s);
        let first = attempts.clone().map(|s| s.started_ms).min().unwrap_or(0);
        let last = attempts.filter_map(|s| s.ended_ms).max().unwrap_or(0);
        (first, last)
    };
    let stages = j
        .plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let record = &j.stages[i];
            let (read, written) = volumes(record);
            let histories = || record.tasks.iter().map(|t| &t.history);
            proto::StageStatus {
                stage: i as u32,
                output: match &stage.output {
                    StageOutput::Shuffle { .. } => "shuffle",
                    _ => "result",
                }
                .to_string(),
                parents: stage.parents.iter().map(|p| p.0).collect(),
                done: record.done(),
                running: record
                    .states()
                    .filter(|t| matches!(t, TaskState::Running { .. }))
                    .count() as u32,
                total: record.tasks.len() as u32,
                rows: written.rows,
                bytes: written.bytes,
                read_rows: read.rows,
                read_bytes: read.bytes,
                attempts: record.attempts(),
                failed_attempts: histories().map(|h| h.failed_on.len() as u32).sum(),
                counted_failures: histories().map(|h| h.failures).sum(),
                input: stage_input(stage),
                first_started_ms: stage_times(i).0,
                last_ended_ms: stage_times(i).1,
                state: j.stage_state(i, crate::leader::pipelined()).name().to_string(),
            }
        })
        .collect();
    let failures = seen
        .iter()
        .filter_map(|(key, seen)| {
            Some(proto::AttemptFailure {
                stage: key.stage.0,
                task: key.task.0,
                attempt: key.attempt.0,
                worker: seen.worker.to_string(),
                message: seen.error.clone()?,
            })
        })
        .collect();
    proto::JobDetail {
        job: Some(job_status(j)),
        stages,
        fetch_failures: j.fetch_failures,
        uncounted_failures: j.uncounted_failures,
        failures,
        accumulators: accumulators(j),
    }
}

/// What a stage's tasks read: `source`, `shuffle`, or `cache` (a program's cached
/// dataset, see `ringleader::cache`), each with its share of the tasks when they differ.
pub fn stage_input(stage: &ringleader_core::plan::StagePlan) -> String {
    use ringleader_core::io::source::Split;
    use ringleader_core::plan::TaskInput;
    let kind = |input: &TaskInput| match input {
        TaskInput::Shuffle(_) => "shuffle",
        TaskInput::Source {
            split: Split::Stored { dataset, .. },
            ..
        } if dataset.starts_with(ringleader_core::io::store::CACHE_PREFIX) => "cache",
        TaskInput::Source { .. } => "source",
    };
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for task in &stage.tasks {
        let k = kind(&task.input);
        match counts.iter_mut().find(|(name, _)| *name == k) {
            Some((_, n)) => *n += 1,
            None => counts.push((k, 1)),
        }
    }
    match counts.as_slice() {
        [(only, _)] => only.to_string(),
        several => several
            .iter()
            .map(|(k, n)| format!("{k} ({n} of {})", stage.tasks.len()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Where one partition of a dataset lives.
pub fn placement(
    state: &ClusterState,
    partition: u32,
    workers: Vec<WorkerId>,
    rows: u64,
    bytes: u64,
) -> proto::PartitionPlacement {
    let addresses = workers
        .iter()
        .map(|w| state.workers.get(w).map(|r| r.address.clone()).unwrap_or_default())
        .collect();
    proto::PartitionPlacement {
        partition,
        workers: workers.into_iter().map(String::from).collect(),
        addresses,
        rows,
        bytes,
        ..Default::default()
    }
}

/// A stored dataset and where its partitions live, with what the leader's last audit found
/// of each (`health`; none on another driver).
pub fn dataset_info(
    state: &ClusterState,
    record: &DatasetRecord,
    health: impl Fn(u32) -> Option<PartitionHealth>,
) -> proto::DatasetInfo {
    let partitions = record
        .placement
        .iter()
        .enumerate()
        .map(|(p, workers)| {
            let mut placed = placement(
                state,
                p as u32,
                workers.clone(),
                record.rows.get(p).copied().unwrap_or(0),
                record.bytes.get(p).copied().unwrap_or(0),
            );
            if let Some(found) = health(p as u32) {
                placed.live_replicas = found.live;
                placed.short_because = found.short_because.unwrap_or_default();
            }
            placed
        })
        .collect();
    proto::DatasetInfo {
        name: record.name.clone(),
        replicas: record.replicas,
        partitions,
        generation: record.generation.clone(),
        format: record.format.name().to_string(),
    }
}

/// This driver's view of its group, from openraft's metrics.
pub fn raft_status(
    metrics: &openraft::RaftMetrics<u64, openraft::BasicNode>,
    peers: &Peers,
    commit_index: u64,
) -> proto::RaftStatus {
    let role = match metrics.state {
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Follower => "follower",
        openraft::ServerState::Candidate => "candidate",
        openraft::ServerState::Learner => "learner",
        openraft::ServerState::Shutdown => "shutdown",
    };
    let leader = metrics.current_leader.unwrap_or(0);
    let peers_progress = metrics
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(id, matched)| proto::PeerProgress {
                    node_id: *id,
                    address: peers.address(*id).unwrap_or_default().to_string(),
                    matched_index: matched.map_or(0, |m| m.index),
                })
                .collect()
        })
        .unwrap_or_default();
    proto::RaftStatus {
        node_id: metrics.id,
        role: role.to_string(),
        term: metrics.current_term,
        leader_id: leader,
        leader_address: peers.address(leader).unwrap_or_default().to_string(),
        last_log_index: metrics.last_log_index.unwrap_or(0),
        commit_index,
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
        purged_index: metrics.purged.map_or(0, |l| l.index),
        peers: peers_progress,
    }
}
/// The job's accumulator totals, as the protocol carries them.
pub(crate) fn accumulators(record: &JobRecord) -> Vec<proto::Accumulated> {
    record.accumulator_totals().iter().map(|a| a.to_proto()).collect()
}
