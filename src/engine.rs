//! What runs a job's plans: the embedded engine (a rayon pool, shuffles through memory and
//! spill files) or a cluster client. A [`Context`](crate::Context) starts datasets with
//! one and every [`Dataset`](crate::Dataset) carries it to run its actions: the seam
//! between the dataset API and whatever executes a plan.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ringleader_core::plan::{JobPlan, TaskValue};
use ringleader_core::sync::lock;

use crate::cache::registry::Caches;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::{Error, Result};

/// The engine behind a context and its datasets.
pub(crate) struct Engine {
    config: Config,
    pool: rayon::ThreadPool,
    /// Set in cluster mode: actions run on the cluster instead of the pool.
    cluster: Option<Cluster>,
    /// Bytes the most recent job spilled (for tests and tuning).
    last_spilled: AtomicU64,
    /// Of those, what its operators (sorts, hash tables) spilled.
    last_operator_spilled: AtomicU64,
    /// Stored datasets this client made from its local inputs (workers on other machines
    /// cannot read them): removed when the engine is dropped, with the job's last dataset.
    uploads: Mutex<Vec<String>>,
    /// The program's cached datasets.
    caches: Caches,
    /// Names this program's stored caches apart from other programs'.
    session: String,
}

impl Engine {
    /// The embedded engine: `config.threads` task threads.
    pub(crate) fn embedded(config: Config) -> Result<Engine> {
        config.check()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("ringleader-task-{i}"))
            .build()
            .map_err(|e| Error::Config(format!("cannot start {} task threads: {e}", config.threads)))?;
        Ok(Engine::with(config, pool, None))
    }

    /// A client of the cluster whose driver(s) listen at `masters` (`host:port[,…]`).
    pub(crate) fn cluster(config: Config, masters: &str) -> Result<Engine> {
        let masters = crate::client::parse_masters(masters)?;
        let cluster = Cluster::new(masters, config.progress)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| Error::Config(format!("cannot start a thread: {e}")))?;
        Ok(Engine::with(config, pool, Some(cluster)))
    }

    fn with(config: Config, pool: rayon::ThreadPool, cluster: Option<Cluster>) -> Engine {
        let session = ringleader_core::net::machine::unique_id();
        if let Some(cluster) = &cluster {
            cluster.keep_session(session.clone());
        }
        Engine {
            config,
            pool,
            cluster,
            last_spilled: AtomicU64::new(0),
            last_operator_spilled: AtomicU64::new(0),
            uploads: Mutex::default(),
            caches: Caches::default(),
            session,
        }
    }

    /// The program's cached datasets.
    pub(crate) fn caches(&self) -> &Caches {
        &self.caches
    }

    /// This program's id among the cluster's clients.
    pub(crate) fn session(&self) -> &str {
        &self.session
    }

    /// A fresh name for a temporary dataset of this program (removed by the leader if the
    /// program dies before it could remove it).
    pub(crate) fn temporary_name(&self) -> String {
        ringleader_core::io::store::temporary_dataset(&self.session, self.caches.next_id())
    }

    /// The engine's settings.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The cluster client, in cluster mode.
    pub(crate) fn cluster_client(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Whether a local path means the same file on the workers as here: always embedded;
    /// in cluster mode only when every live worker is on this machine.
    pub(crate) fn workers_see_local_files(&self) -> Result<bool> {
        match &self.cluster {
            Some(cluster) => cluster.shares_files(),
            None => Ok(true),
        }
    }

    /// Remembers a temporary dataset uploaded for this job, to remove when it is over.
    pub(crate) fn note_upload(&self, name: String) {
        lock(&self.uploads).push(name);
    }

    /// Runs a plan and returns its final stage's values.
    pub(crate) fn execute(&self, plan: &JobPlan) -> Result<Vec<TaskValue>> {
        if let Some(cluster) = &self.cluster {
            return cluster.execute(plan);
        }
        let cached = self.caches.memory_used() as usize;
        let config = Config {
            memory_limit: self
                .config
                .memory_limit
                .saturating_sub(cached)
                .max(ringleader_core::memory::MIN_BUDGET),
            ..self.config.clone()
        };
        let (values, stats) = crate::embedded::run_job(&config, &self.pool, plan)?;
        self.last_spilled.store(stats.spilled_bytes, Ordering::Relaxed);
        self.last_operator_spilled
            .store(stats.operator_spilled_bytes, Ordering::Relaxed);
        Ok(values)
    }

    /// Bytes the most recent embedded job spilled to disk (shuffle blocks and operators).
    pub(crate) fn last_spilled_bytes(&self) -> u64 {
        self.last_spilled.load(Ordering::Relaxed)
    }

    /// Bytes the most recent embedded job's operators spilled.
    pub(crate) fn last_operator_spilled_bytes(&self) -> u64 {
        self.last_operator_spilled.load(Ordering::Relaxed)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.caches.release_all(self.cluster.as_ref());
        let uploads = std::mem::take(self.uploads.get_mut().unwrap_or_else(|e| e.into_inner()));
        if let Some(cluster) = &self.cluster {
            for name in uploads {
                if let Err(e) = cluster.remove_dataset(&name) {
                    eprintln!("warning: could not remove the uploaded input {name}: {e}");
                }
            }
        }
    }
}
