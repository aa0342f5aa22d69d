//! [`ClusterState`] as openraft's state machine. The state lives in memory behind a lock
//! that the driver's services read ([`Replica`]); snapshots are the postcard encoding of the
//! whole state, kept in the driver's redb file, so a restarted driver loads its last
//! snapshot and re-applies the committed log after it.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Instant;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogId, SnapshotMeta, StorageIOError, StoredMembership,
};
use redb::{ReadableDatabase, TableDefinition};
use ringleader_core::sync::lock;
use serde::{Deserialize, Serialize};

use super::log_store::RaftFile;
use super::{StorageError, TypeConfig};
use crate::attempt_clock::AttemptClock;
use crate::state::{ClusterState, Outcome};

const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

/// The last applied log id and the membership in force.
type Applied = (Option<LogId<u64>>, StoredMembership<u64, openraft::BasicNode>);

/// The replicated state as this driver has applied it, shared with its services.
#[derive(Default)]
pub struct Replica {
    state: RwLock<ClusterState>,
    applied: Mutex<Applied>,
    /// When this driver applied each attempt's start and end (soft state).
    clock: Mutex<AttemptClock>,
}

impl Replica {
    /// Reads the state.
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The attempts' times as this driver applied them.
    pub fn clock(&self) -> MutexGuard<'_, AttemptClock> {
        lock(&self.clock)
    }

    fn replace(&self, state: ClusterState) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    fn applied(&self) -> Applied {
        lock(&self.applied).clone()
    }

    fn set_applied(&self, log_id: Option<LogId<u64>>, membership: Option<StoredMembership<u64, openraft::BasicNode>>) {
        let mut applied = lock(&self.applied);
        applied.0 = log_id;
        if let Some(m) = membership {
            applied.1 = m;
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, openraft::BasicNode>,
    data: Vec<u8>,
}

/// The state machine side of the store.
#[derive(Clone)]
pub struct StateMachineStore {
    file: RaftFile,
    replica: Arc<Replica>,
    snapshots: Arc<AtomicU64>,
}

impl StateMachineStore {
    /// The state machine in `file`, starting from its last snapshot.
    pub fn open(file: RaftFile) -> Result<StateMachineStore, StorageError> {
        let store = StateMachineStore {
            file,
            replica: Arc::new(Replica::default()),
            snapshots: Arc::new(AtomicU64::new(0)),
        };
        if let Some(snapshot) = store.stored_snapshot()? {
            let state = ClusterState::from_snapshot(&snapshot.data)
                .map_err(|e| read_error(AnyError::error(format!("{}: snapshot {e}", store.file.path.display()))))?;
            store.replica.replace(state);
            store
                .replica
                .set_applied(snapshot.meta.last_log_id, Some(snapshot.meta.last_membership.clone()));
        }
        Ok(store)
    }

    /// The state this store applies, for the driver's services.
    pub fn replica(&self) -> Arc<Replica> {
        self.replica.clone()
    }

    fn stored_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let read = self.file.db.begin_read().map_err(|e| read_error(AnyError::new(&e)))?;
        let table = match read.open_table(SNAPSHOT) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(read_error(AnyError::new(&e))),
        };
        let Some(bytes) = table.get("current").map_err(|e| read_error(AnyError::new(&e)))? else {
            return Ok(None);
        };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|e| {
            read_error(AnyError::error(format!(
                "{}: stored snapshot does not decode: {e}",
                self.file.path.display()
            )))
        })
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
        let signature = Some(snapshot.meta.signature());
        let io = |e: AnyError| StorageError::from(StorageIOError::write_snapshot(signature.clone(), e));
        let bytes = postcard::to_stdvec(snapshot).map_err(|e| io(AnyError::new(&e)))?;
        let write = self.file.db.begin_write().map_err(|e| io(AnyError::new(&e)))?;
        {
            let mut table = write.open_table(SNAPSHOT).map_err(|e| io(AnyError::new(&e)))?;
            table
                .insert("current", bytes.as_slice())
                .map_err(|e| io(AnyError::new(&e)))?;
        }
        write.commit().map_err(|e| io(AnyError::new(&e)))
    }
}

fn read_error(e: AnyError) -> StorageError {
    StorageError::from(StorageIOError::read_state_machine(e))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Encode under the read lock so the state and its applied id agree.
        let (data, (last_log_id, last_membership)) = {
            let state = self.replica.read();
            let data = postcard::to_stdvec(&*state)
                .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, AnyError::new(&e))))?;
            (data, self.replica.applied())
        };
        let n = self.snapshots.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{n}", id.leader_id, id.index),
            None => format!("empty-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        self.save_snapshot(&stored)?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, openraft::BasicNode>), StorageError> {
        Ok(self.replica.applied())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut state = self.replica.state.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let log_id = *entry.get_log_id();
            let membership = match entry.payload {
                EntryPayload::Blank => {
                    outcomes.push(Outcome::Done);
                    None
                }
                EntryPayload::Normal(command) => {
                    let mut events = Vec::new();
                    outcomes.push(state.apply_noting(command, &mut events));
                    let mut clock = self.replica.clock();
                    let now = Instant::now();
                    events.into_iter().for_each(|event| clock.note(event, now));
                    None
                }
                EntryPayload::Membership(m) => {
                    outcomes.push(Outcome::Done);
                    Some(StoredMembership::new(Some(log_id), m))
                }
            };
            self.replica.set_applied(Some(log_id), membership);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = ClusterState::from_snapshot(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::error(format!("received snapshot {e}")),
            ))
        })?;
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })?;
        self.replica.replace(state);
        self.replica
            .set_applied(meta.last_log_id, Some(meta.last_membership.clone()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.stored_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::super::log_store::{LogStore, RaftFile};
    use super::*;

    struct TempStore;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for TempStore {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| read_error(AnyError::new(&e)))?;
            let file =
                RaftFile::open(dir.path(), 1, "test", "1=127.0.0.1:1").map_err(|e| read_error(AnyError::new(&e)))?;
            let sm = StateMachineStore::open(file.clone())?;
            Ok((dir, LogStore::new(file), sm))
        }
    }

    /// openraft's own storage test suite, run against the redb store.
    #[test]
    fn passes_openraft_storage_suite() -> Result<(), StorageError> {
        Suite::test_all(TempStore)
    }
}
