//! Taking over as leader and letting go: a new leader waits until its state machine has
//! applied everything committed, presumes the registered workers alive for one heartbeat
//! timeout, and returns every running task to pending ([`Command::RequeueRunning`]) so it
//! is issued again with a new attempt number; a driver that stops leading hands its job
//! watchers the new leader's address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_core::ids::{JobId, WorkerId};
use ringleader_core::net::driver_group::not_leader;

use ringleader_core::sync::lock;

use super::{DriverInner, LeaderError};
use crate::state::{Command, JobState};

/// How long a leader may go without a majority acknowledging it before it stops serving
/// as leader (by then the others have long elected one: an election takes 0.4 s with 40 ms
/// heartbeats, at most about 1.1 s with the longest measured interval, 100 ms).
pub const QUORUM_LOST: Duration = Duration::from_millis(3000);

impl DriverInner {
    /// Follows this node's Raft role: takes over when it becomes leader, lets go of the
    /// clients it was serving when it stops leading.
    pub async fn follow_leadership(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        loop {
            let (leader, term, unacked) = {
                let m = metrics.borrow_and_update();
                (
                    m.state == openraft::ServerState::Leader,
                    m.current_term,
                    m.millis_since_quorum_ack.filter(|_| self.peers.len() > 1),
                )
            };
            let leading = self.leading();
            let cut_off = unacked.is_some_and(|ms| ms > QUORUM_LOST.as_millis() as u64);
            if leader && cut_off {
                // Raft keeps a leader cut off from its group a leader until it hears of a
                // newer term; its clients and workers must not wait for that: it lets them
                // go now, so they find the leader the others elect.
                if leading.is_some() {
                    tracing::warn!(
                        "driver {}: no majority has answered for {} ms; stepping down",
                        self.id,
                        unacked.unwrap_or_default()
                    );
                    self.step_down();
                }
            } else if leader && leading != Some(term) {
                // A leader that could not confirm its term (it restarted believing it led,
                // or lost a race) simply follows; anything else is worth a line.
                if let Err(e) = self.take_over(term).await
                    && !matches!(e, LeaderError::NotConfirmed(_))
                {
                    tracing::warn!("driver {}: taking over as leader in term {term}: {e}", self.id);
                }
            } else if !leader && leading.is_some() {
                self.step_down();
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    pub(super) async fn take_over(self: &Arc<Self>, term: u64) -> Result<(), LeaderError> {
        self.raft
            .ensure_linearizable()
            .await
            .map_err(|e| LeaderError::NotConfirmed(e.to_string()))?;
        let (workers, running): (Vec<WorkerId>, Vec<JobId>) = {
            let state = self.state();
            (
                state.workers.keys().cloned().collect(),
                state
                    .jobs
                    .values()
                    .filter(|j| j.state == JobState::Running)
                    .map(|j| j.id.clone())
                    .collect(),
            )
        };
        {
            // Presumed alive until one heartbeat timeout says otherwise.
            let mut beats = lock(&self.heartbeats);
            let now = Instant::now();
            for w in workers {
                beats.entry(w).or_insert(now);
            }
        }
        self.write(Command::RequeueRunning).await?;
        let now = Instant::now();
        lock(&self.unwatched).extend(running.into_iter().map(|j| (j, now)));
        *lock(&self.last_live) = now;
        lock(&self.was_live).clear();
        *lock(&self.leading) = Some(term);
        tracing::info!("driver {}: leading in term {term}", self.id);
        self.wake.notify_one();
        Ok(())
    }

    pub(super) fn step_down(&self) {
        *lock(&self.leading) = None;
        lock(&self.heartbeats).clear();
        lock(&self.unwatched).clear();
        let leader = self.leader_address();
        for (_, (tx, _)) in lock(&self.watchers).drain() {
            // The client follows the hint and watches its job on the new leader.
            let _ = tx.try_send(Err(not_leader(leader.as_deref())));
        }
        tracing::info!("driver {}: no longer leading", self.id);
    }
}
