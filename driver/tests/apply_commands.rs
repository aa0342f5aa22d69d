//! The state machine never panics, whatever commands the log holds: random sequences of
//! every command (stale and duplicate reports, speculation, lost workers and map outputs, a
//! leader's takeover, cancellation, batches) are applied to one state, and its invariants
//! are checked after each. Every driver applies the same log, so a panic here would stop
//! every replica, and again at every restart. The log's stored entries and the snapshots
//! are fuzzed the same way: corrupted (bytes flipped, the end cut, the checksum fixed up so
//! the decoder itself is reached), each decodes to an error or to something `apply` and the
//! driver's views work on without a panic (seeded, thousands of cases).

use std::collections::BTreeMap;

use proptest::prelude::*;
use ringleader_core::data::ChunkStream;
use ringleader_core::error::Result;
use ringleader_core::ids::{Attempt, JobId, ShuffleId, StageId, TaskId, WorkerId};
use ringleader_core::io::source::Split;
use ringleader_core::io::store::{DatasetFormat, StoreSpec};
use ringleader_core::plan::{
    ActionEnv, ActionFn, JobPlan, ReduceFn, ShuffleRead, SinkFn, StageOutput, StagePlan, TaskInput, TaskPlan, TaskValue,
};
use ringleader_driver::state::{ClusterState, Command, JobState, MAX_ATTEMPTS, StageState, TaskState};

fn never_sink(_: &[u8], _: u32) -> Result<Box<dyn ringleader_core::shuffle::ShuffleSink>> {
    unreachable!("plans are only applied, never run")
}

fn never_action(_: &[u8], _: ChunkStream, _: &ActionEnv) -> Result<TaskValue> {
    unreachable!("plans are only applied, never run")
}

fn never_reduce(_: &[u8], _: Vec<ringleader_core::shuffle::Side>) -> Result<ChunkStream> {
    unreachable!("plans are only applied, never run")
}

/// A map stage of `maps` tasks shuffled into `reduces` tasks, writing a stored dataset when
/// `store` (owners: every worker's address).
fn plan(maps: usize, reduces: usize, store: bool) -> JobPlan {
    let map = TaskPlan {
        input: TaskInput::Source {
            split: Split::Inline { ipc: Vec::new() },
            sample_windows: None,
        },
        steps: Vec::new(),
    };
    let reduce = |partition: u32| TaskPlan {
        input: TaskInput::Shuffle(ShuffleRead {
            reduce: ringleader_core::ship!(never_reduce as ReduceFn),
            state: Vec::new(),
            shuffles: vec![ShuffleId(0)],
            partition: TaskId(partition),
        }),
        steps: Vec::new(),
    };
    JobPlan {
        stages: vec![
            StagePlan {
                id: StageId(0),
                tasks: vec![map; maps],
                output: StageOutput::Shuffle {
                    shuffle: ShuffleId(0),
                    sink: ringleader_core::ship!(never_sink as SinkFn),
                    state: Vec::new(),
                    partitions: reduces as u32,
                },
                parents: Vec::new(),
                state_from: None,
            },
            StagePlan {
                id: StageId(1),
                tasks: (0..reduces as u32).map(reduce).collect(),
                output: StageOutput::Action {
                    f: ringleader_core::ship!(never_action as ActionFn),
                    state: Vec::new(),
                },
                parents: vec![StageId(0)],
                state_from: None,
            },
        ],
        store: store.then(|| StoreSpec {
            dataset: "out".into(),
            generation: "g1".into(),
            format: DatasetFormat::Text,
            replicas: 2,
            overwrite: false,
            owners: (0..reduces).map(|_| (0..3).map(address).collect()).collect(),
        }),
    }
}

fn address(w: usize) -> String {
    format!("198.18.0.{}:7100", w + 1)
}

fn job_id() -> impl Strategy<Value = JobId> {
    (1u32..3).prop_map(|n| JobId::new(format!("job-{n:06}")))
}

fn worker_id() -> impl Strategy<Value = WorkerId> {
    (1u32..4).prop_map(|n| WorkerId::new(format!("worker-{n}")))
}

fn value() -> impl Strategy<Value = TaskValue> {
    prop_oneof![
        (0u64..100).prop_map(TaskValue::Count),
        (0u64..100, 0u64..1000).prop_map(|(rows, bytes)| TaskValue::Shuffled { rows, bytes }),
        (0u64..100, prop::collection::vec(0usize..4, 0..3)).prop_map(|(rows, on)| TaskValue::Stored {
            rows,
            bytes: rows * 10,
            holders: on.into_iter().map(address).collect(),
        }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let task = || (job_id(), (0u32..2).prop_map(StageId), (0u32..2).prop_map(TaskId));
    let leaf = prop_oneof![
        (0usize..3, 0u32..2).prop_map(|(w, incarnation)| Command::RegisterWorker {
            address: address(w),
            slots: 2,
            pid: 1,
            shuffle_dir: String::new(),
            machine: format!("m{w}"),
            incarnation: format!("i{incarnation}"),
        }),
        (1usize..3, 1usize..3, any::<bool>(), 0u32..3).prop_map(|(maps, reduces, store, sub)| Command::SubmitJob {
            name: "t".into(),
            binary: "0".repeat(32),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: String::new(),
            plan: plan(maps, reduces, store),
            submission: format!("sub-{sub}"),
            submitted_ms: 0,
        }),
        (task(), worker_id()).prop_map(|((job, stage, task), worker)| Command::StartTask {
            job,
            stage,
            task,
            worker
        }),
        (task(), worker_id()).prop_map(|((job, stage, task), worker)| Command::Speculate {
            job,
            stage,
            task,
            worker
        }),
        (task(), (1u32..4).prop_map(Attempt), value()).prop_map(|((job, stage, task), attempt, value)| {
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                value,
                read: Default::default(),
                accumulated: Vec::new(),
            }
        }),
        (task(), (1u32..4).prop_map(Attempt), any::<bool>(), any::<bool>()).prop_map(
            |((job, stage, task), attempt, retryable, counts)| {
                Command::FailTask {
                    job,
                    stage,
                    task,
                    attempt,
                    message: "boom".into(),
                    retryable,
                    counts,
                }
            }
        ),
        (task(), (1u32..4).prop_map(Attempt), worker_id()).prop_map(|((job, stage, task), attempt, worker)| {
            Command::FetchFailed {
                job,
                stage,
                task,
                attempt,
                worker,
                message: "gone".into(),
            }
        }),
        worker_id().prop_map(|worker| Command::WorkerLost { worker }),
        Just(Command::RequeueRunning),
        job_id().prop_map(|job| Command::CancelJob {
            job,
            reason: "user".into()
        }),
        Just(Command::RemoveDataset {
            name: "out".into(),
            generation: "g0".into(),
            request: "r1".into(),
        }),
        (0u32..3, proptest::option::of(0u32..3)).prop_map(|(g, expected)| Command::PlaceDataset(
            ringleader_driver::state::PendingDataset {
                name: "out".into(),
                generation: format!("g{g}"),
                expected: expected.map(|e| format!("g{e}")),
                placed_ms: 0,
            }
        )),
        (0u32..3).prop_map(|g| Command::AbortDataset {
            name: "out".into(),
            generation: format!("g{g}"),
        }),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Command::Batch)
    })
}

/// What must hold after every command.
fn check(state: &ClusterState) -> std::result::Result<(), String> {
    for job in state.jobs.values() {
        let shapes_agree = job.stages.len() == job.plan.stages.len()
            && job
                .plan
                .stages
                .iter()
                .zip(&job.stages)
                .all(|(p, s)| p.tasks.len() == s.tasks.len());
        if !shapes_agree {
            return Err(format!("{}: tasks and stages disagree", job.id));
        }
        for (s, stage) in job.stages.iter().enumerate() {
            // A stage's lifecycle follows its job's: none failed while the job runs, every
            // one done once it succeeded, and a stage runs only once the stages it reads let it.
            let lifecycle = job.stage_state(s, true);
            let expected = match &job.state {
                JobState::Running => lifecycle != StageState::Failed,
                JobState::Succeeded => lifecycle == StageState::Done,
                _ => matches!(lifecycle, StageState::Done | StageState::Failed),
            };
            if !expected {
                return Err(format!(
                    "{} stage {s} is {} while the job is {}",
                    job.id,
                    lifecycle.name(),
                    job.state.name()
                ));
            }
            for (t, record) in stage.tasks.iter().enumerate() {
                let (task, history) = (&record.state, &record.history);
                if let TaskState::Running { attempt, .. } | TaskState::Done { attempt, .. } = task
                    && attempt.0 > history.attempts
                {
                    return Err(format!("{} {s}/{t}: attempt {attempt} of {}", job.id, history.attempts));
                }
                if history.failures > history.attempts {
                    return Err(format!("{} {s}/{t}: more failures than attempts", job.id));
                }
                if job.state == JobState::Running && history.failures >= MAX_ATTEMPTS {
                    return Err(format!("{} {s}/{t}: attempts used up and the job runs on", job.id));
                }
                // A copy lives only inside a running task (the type says so); it runs
                // elsewhere than the original, as another attempt.
                if let TaskState::Running {
                    attempt,
                    worker,
                    copy: Some(copy),
                } = task
                    && (copy.worker == *worker || copy.attempt == *attempt || copy.attempt.0 > history.attempts)
                {
                    return Err(format!("{} {s}/{t}: a copy beside itself ({copy:?})", job.id));
                }
            }
        }
        if job.state == JobState::Running
            && job.uncounted_failures > ringleader_driver::state::max_uncounted_failures(job)
        {
            return Err(format!(
                "{}: uncounted failures past their bound and the job runs on",
                job.id
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_command_sequence_applies_without_panicking_and_keeps_the_invariants(
        commands in prop::collection::vec(command(), 1..60)
    ) {
        let mut state = ClusterState::default();
        for command in commands {
            state.apply(command);
            if let Err(broken) = check(&state) {
                prop_assert!(false, "{}", broken);
            }
        }
    }
}

#[test]
fn a_speculated_task_whose_both_attempts_fail_without_counting_does_not_underflow() {
    let mut state = ClusterState::default();
    for w in 0..2 {
        state.apply(Command::RegisterWorker {
            address: address(w),
            slots: 2,
            pid: 1,
            shuffle_dir: String::new(),
            machine: format!("m{w}"),
            incarnation: "i".into(),
        });
    }
    state.apply(Command::SubmitJob {
        name: "t".into(),
        binary: "0".repeat(32),
        args: Vec::new(),
        env: BTreeMap::new(),
        working_dir: String::new(),
        plan: plan(1, 1, false),
        submission: "s".into(),
        submitted_ms: 0,
    });
    let job = state.jobs.keys().next().cloned().expect("a job");
    let task = |command: fn(JobId) -> Command| command(job.clone());
    state.apply(task(|job| Command::StartTask {
        job,
        stage: StageId(0),
        task: TaskId(0),
        worker: "worker-1".into(),
    }));
    state.apply(task(|job| Command::Speculate {
        job,
        stage: StageId(0),
        task: TaskId(0),
        worker: "worker-2".into(),
    }));
    // Both attempts end in failures that do not count (a lost map output, a lost worker's).
    for attempt in [2, 1] {
        state.apply(Command::FailTask {
            job: job.clone(),
            stage: StageId(0),
            task: TaskId(0),
            attempt: Attempt(attempt),
            message: "lost".into(),
            retryable: true,
            counts: false,
        });
        assert_eq!(check(&state), Ok(()));
    }
    assert_eq!(state.jobs[&job].state, JobState::Running);
    assert_eq!(state.jobs[&job].stages[0].tasks[0].state, TaskState::Pending);
}

/// `bytes` with bytes flipped and the end cut off.
fn corrupt(mut bytes: Vec<u8>, flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, with) in flips {
            let at = at % bytes.len();
            bytes[at] ^= with.max(1);
        }
    }
    bytes.truncate(bytes.len().saturating_sub(cut));
    bytes
}

/// Applies `commands`, then reads every view of the state the driver serves: none panics.
fn use_state(state: &mut ClusterState, commands: &[Command]) {
    for command in commands {
        state.apply(command.clone());
    }
    let _ = state.live_datasets();
    let _ = state.running_per_worker();
    for job in state.jobs.keys().cloned().collect::<Vec<_>>() {
        let _ = state.rival_attempt(&job, StageId(0), TaskId(0), Attempt(1));
    }
}

proptest! {
    // Seeded: a failure here reproduces on every run.
    #![proptest_config(ProptestConfig {
        cases: 1500,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5241_4654),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn corrupted_log_entries_decode_to_an_error_or_a_command_that_applies(
        commands in prop::collection::vec(command(), 1..8),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in 0usize..16,
        keep_checksum in any::<bool>(),
    ) {
        use ringleader_driver::raft::log_store::{decode_entry, encode_entry};
        let mut state = ClusterState::default();
        for (index, command) in commands.into_iter().enumerate() {
            let entry = openraft::Entry {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index as u64 + 1),
                payload: openraft::EntryPayload::Normal(command),
            };
            let stored = encode_entry(&entry).expect("encode");
            prop_assert!(decode_entry(&stored).is_ok(), "a valid entry did not decode");
            // Corrupt the body; with a fixed-up checksum the postcard decoder itself is fuzzed.
            let mut bad = corrupt(stored, &flips, cut);
            if !keep_checksum && bad.len() >= 4 {
                let sum = crc32fast::hash(&bad[4..]).to_le_bytes();
                bad[..4].copy_from_slice(&sum);
            }
            if let Ok(decoded) = decode_entry(&bad)
                && let openraft::EntryPayload::Normal(command) = decoded.payload
            {
                use_state(&mut state, &[command]);
            }
        }
    }

    #[test]
    fn corrupted_snapshots_decode_to_an_error_or_a_state_that_serves(
        commands in prop::collection::vec(command(), 1..30),
        more in prop::collection::vec(command(), 0..10),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..3),
        cut in prop_oneof![3 => Just(0usize), 1 => 1usize..64],
    ) {
        let mut state = ClusterState::default();
        for command in commands {
            state.apply(command);
        }
        let snapshot = postcard::to_stdvec(&state).expect("encode");
        if let Ok(mut restored) = ClusterState::from_snapshot(&corrupt(snapshot, &flips, cut)) {
            use_state(&mut restored, &more);
        }
    }
}
