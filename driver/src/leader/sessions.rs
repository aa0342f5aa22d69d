//! Programs' own datasets (caches and broadcast values, named after the program's session)
//! live as long as their program: a running program says so every
//! [`ringleader_core::io::store::SESSION_PING`], and while this driver leads it removes the
//! datasets of a program silent for [`ringleader_core::io::store::session_expiry`] (one killed
//! before it could remove them). A new leader gives every program it has not heard from a
//! whole expiry from the moment it first sees its datasets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_core::io::store::{program_session, session_expiry};
use ringleader_core::sync::lock;

use super::DriverInner;
use crate::state::Command;

impl DriverInner {
    /// Notes that program `session` is alive.
    pub fn keep_session(&self, session: String) {
        lock(&self.sessions).insert(session, Instant::now());
    }

    /// Removes silent programs' datasets until the process ends.
    pub async fn sweep_sessions_forever(self: Arc<Self>) {
        let expiry = session_expiry();
        let every = (expiry / 4).clamp(Duration::from_millis(250), Duration::from_secs(10));
        loop {
            tokio::time::sleep(every).await;
            if self.leading().is_some() {
                self.remove_silent_programs_datasets(expiry).await;
            } else {
                // Another driver leads: it keeps its own view.
                lock(&self.sessions).clear();
            }
        }
    }

    async fn remove_silent_programs_datasets(&self, expiry: Duration) {
        let now = Instant::now();
        let stale: Vec<(String, String)> = {
            let state = self.state();
            let mut sessions = lock(&self.sessions);
            state
                .datasets
                .iter()
                .filter(|(name, _)| {
                    program_session(name).is_some_and(|session| {
                        let seen = sessions.entry(session.to_string()).or_insert(now);
                        now.duration_since(*seen) > expiry
                    })
                })
                .map(|(name, record)| (name.clone(), record.generation.clone()))
                .collect()
        };
        for (name, generation) in stale {
            let removal = Command::RemoveDataset {
                name: name.clone(),
                generation,
                request: String::new(),
            };
            match self.write(removal).await {
                Ok(_) => tracing::info!("removed {name}: its program has been silent for {expiry:?}"),
                Err(e) => {
                    tracing::debug!("removing a silent program's {name}: {e}");
                    return;
                }
            }
        }
    }
}
