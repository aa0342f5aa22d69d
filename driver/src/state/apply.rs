//! Applying a [`Command`] to the [`ClusterState`]: the one place the replicated state
//! changes, a dispatcher handing each command to its method (`members`, `jobs`,
//! `attempts`, `datasets`; a command's pieces are assembled here). Each applied attempt's
//! start and end comes out as an [`AttemptEvent`] for the driver's soft state.

use ringleader_core::ids::{AttemptKey, JobId, StageId, TaskId, WorkerId};

use super::attempts::{Failed, Finished, TaskAt};
use super::jobs::Submission;
use super::records::WorkerRecord;
use super::{ClusterState, Command, Outcome};

impl ClusterState {
    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        self.apply_noting(command, &mut Vec::new())
    }

    /// Applies one command, adding to `events` the attempts it started and ended (those of
    /// the commands inside it too), for the driver's [`crate::attempt_clock`].
    pub fn apply_noting(&mut self, command: Command, events: &mut Vec<AttemptEvent>) -> Outcome {
        let noted = Noted::of(&command);
        let job = command.job().cloned();
        let outcome = self.apply_one(command, events);
        noted.record(events, &outcome);
        if let Some(job) = job {
            self.settle_ended_output(&job);
        }
        outcome
    }

    /// Hands `command` to the method that applies it.
    fn apply_one(&mut self, command: Command, events: &mut Vec<AttemptEvent>) -> Outcome {
        match command {
            Command::RegisterWorker {
                address,
                slots,
                pid,
                shuffle_dir,
                machine,
                incarnation,
            } => self.register_worker(WorkerRecord {
                id: WorkerId::default(),
                address,
                slots,
                pid,
                shuffle_dir,
                machine,
                incarnation,
            }),
            Command::WorkerLost { worker } => Outcome::Requeued(self.lose_worker(&worker)),
            Command::AddBinary { hash, holders, at_ms } => self.add_binary(hash, holders, at_ms),
            Command::ForgetBinary { hash, unused_since_ms } => self.forget_binary(hash, unused_since_ms),
            Command::SubmitJob {
                name,
                binary,
                args,
                env,
                working_dir,
                plan,
                submission,
                submitted_ms,
            } => self.submit_job(Submission {
                name,
                binary,
                args,
                env,
                working_dir,
                plan,
                submission,
                submitted_ms,
            }),
            Command::CancelJob { job, reason } => self.cancel_job(&job, reason),
            Command::RequeueRunning => self.requeue_running(),
            Command::StartTask {
                job,
                stage,
                task,
                worker,
            } => self.start_task(TaskAt { job: &job, stage, task }, worker),
            Command::Speculate {
                job,
                stage,
                task,
                worker,
            } => self.speculate(TaskAt { job: &job, stage, task }, worker),
            Command::AuthorizeCommit {
                job,
                stage,
                task,
                attempt,
            } => self.authorize_commit(TaskAt { job: &job, stage, task }, attempt),
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                value,
                read,
                accumulated,
            } => self.finish_task(
                TaskAt { job: &job, stage, task },
                Finished {
                    attempt,
                    value,
                    read,
                    accumulated,
                },
            ),
            Command::FailTask {
                job,
                stage,
                task,
                attempt,
                message,
                retryable,
                counts,
            } => self.fail_task(
                TaskAt { job: &job, stage, task },
                Failed {
                    attempt,
                    message,
                    retryable,
                    counts,
                },
            ),
            Command::FetchFailed {
                job,
                stage,
                task,
                attempt,
                worker,
                message,
            } => self.fetch_failed(TaskAt { job: &job, stage, task }, attempt, &worker, &message),
            Command::PlaceDataset(pending) => self.place_dataset(pending),
            Command::CommitDataset(record) => self.commit_dataset(record),
            Command::AbortDataset { name, generation } => self.abort_dataset(&name, &generation),
            Command::RemoveDataset {
                name,
                generation,
                request,
            } => self.remove_dataset(&name, &generation, &request),
            Command::RepairDataset {
                name,
                generation,
                partition,
                holders,
            } => self.repair_dataset(&name, &generation, partition, holders),
            Command::Batch(commands) => {
                Outcome::Batch(commands.into_iter().map(|c| self.apply_noting(c, events)).collect())
            }
            Command::Part { key, bytes, at_ms } => self.add_part(key, &bytes, at_ms),
            Command::Assemble { key, len, hash } => self.assemble(key, len, hash, events),
        }
    }

    /// Adds a piece of a command being assembled. A leader proposes its pieces in one go:
    /// those of an earlier term's leader, and any left unassembled too long, never will be
    /// assembled, and go.
    fn add_part(&mut self, key: (u64, u64), bytes: &[u8], at_ms: u64) -> Outcome {
        self.parts
            .retain(|k, (first_ms, _)| k.0 >= key.0 && first_ms.saturating_add(super::PARTS_EXPIRE_MS) >= at_ms);
        self.parts
            .entry(key)
            .or_insert_with(|| (at_ms, Vec::new()))
            .1
            .extend_from_slice(bytes);
        Outcome::Done
    }

    /// Applies the command the pieces under `key` make, if they are `len` bytes of `hash`.
    fn assemble(&mut self, key: (u64, u64), len: u64, hash: String, events: &mut Vec<AttemptEvent>) -> Outcome {
        let Some((_, bytes)) = self.parts.remove(&key) else {
            return Outcome::Malformed(format!("no pieces {key:?} to assemble"));
        };
        let mut found = ringleader_core::net::binary::ContentHash::default();
        found.update(&bytes);
        if bytes.len() as u64 != len || found.finish() != hash {
            return Outcome::Malformed(format!(
                "pieces {key:?} hold {} bytes, not the {len} proposed (or not the same bytes)",
                bytes.len()
            ));
        }
        match postcard::from_bytes(&bytes) {
            Ok(Command::Part { .. } | Command::Assemble { .. }) => {
                Outcome::Malformed(format!("pieces {key:?} assemble into another piece"))
            }
            Ok(command) => self.apply_noting(command, events),
            Err(e) => Outcome::Malformed(format!("pieces {key:?} do not decode: {e}")),
        }
    }
}

/// An attempt started or ended, as an applied command says.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEvent {
    /// It started (the first attempt or a speculative copy) on `worker`.
    Started {
        /// The attempt.
        key: AttemptKey,
        /// Where.
        worker: WorkerId,
    },
    /// It finished, or failed with `error`.
    Ended {
        /// The attempt.
        key: AttemptKey,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

/// A command's effect on task attempts, an [`AttemptEvent`] once its outcome is known.
enum Noted {
    /// An attempt of a task (its original, or a speculative copy) may start on `worker`:
    /// its number is the command's outcome.
    Started {
        job: JobId,
        stage: StageId,
        task: TaskId,
        worker: WorkerId,
    },
    /// An attempt ended (with its error if it failed).
    Ended(AttemptKey, Option<String>),
    /// Nothing about attempts.
    Nothing,
}
impl Noted {
    fn of(command: &Command) -> Noted {
        match command {
            Command::StartTask {
                job,
                stage,
                task,
                worker,
            }
            | Command::Speculate {
                job,
                stage,
                task,
                worker,
            } => Noted::Started {
                job: job.clone(),
                stage: *stage,
                task: *task,
                worker: worker.clone(),
            },
            Command::FinishTask {
                job,
                stage,
                task,
                attempt,
                ..
            } => Noted::Ended(AttemptKey::new(job, *stage, *task, *attempt), None),
            Command::FailTask {
                job,
                stage,
                task,
                attempt,
                message,
                ..
            } => Noted::Ended(AttemptKey::new(job, *stage, *task, *attempt), Some(message.clone())),
            Command::FetchFailed {
                job,
                stage,
                task,
                attempt,
                worker,
                message,
            } => Noted::Ended(
                AttemptKey::new(job, *stage, *task, *attempt),
                Some(format!("could not read map output on {worker}: {message}")),
            ),
            _ => Noted::Nothing,
        }
    }

    fn record(self, events: &mut Vec<AttemptEvent>, outcome: &Outcome) {
        match self {
            Noted::Started {
                job,
                stage,
                task,
                worker,
            } => {
                if let Outcome::TaskStarted(attempt) = outcome {
                    let key = AttemptKey::new(&job, stage, task, *attempt);
                    events.push(AttemptEvent::Started { key, worker });
                }
            }
            Noted::Ended(key, error) => events.push(AttemptEvent::Ended { key, error }),
            Noted::Nothing => {}
        }
    }
}
