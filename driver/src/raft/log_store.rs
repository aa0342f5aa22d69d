//! The Raft log, vote and commit index, in redb (`raft.redb` under the driver's data
//! directory). Each log entry is stored as a CRC-32 of its bytes followed by the postcard
//! encoding of the entry; opening the store reads every entry back, so a damaged log stops
//! the driver with the file and entry at fault instead of silently losing committed work.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, RaftLogId, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StorageError, TypeConfig};

/// Log entries by index.
pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Small records: vote, committed, purged.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// File name of the store inside a data directory.
pub const FILE_NAME: &str = "raft.redb";

/// Why a store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the file (two drivers on one directory).
    #[error("{0} is in use by another driver; give every driver its own --data-dir")]
    InUse(PathBuf),
    /// redb could not open or read the file.
    #[error(
        "{path}: {message}; the file is damaged: restore the directory, or delete it to rejoin empty and catch up from the group"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What redb said.
        message: String,
    },
    /// A log entry failed its checksum or does not decode.
    #[error("{path}: log entry {index} is corrupt ({reason}); refusing to start rather than drop committed entries")]
    CorruptEntry {
        /// The file.
        path: PathBuf,
        /// The entry's log index.
        index: u64,
        /// What is wrong.
        reason: BadEntry,
    },
    /// The directory belongs to another group.
    #[error(
        "{path} belongs to another driver group (fingerprint {found}, this group's is {expected}: {peers}); nothing was changed. Use a fresh --data-dir, or the --peers it was created with"
    )]
    OtherGroup {
        /// The file.
        path: PathBuf,
        /// Its fingerprint.
        found: String,
        /// Ours.
        expected: String,
        /// This group's peer list.
        peers: String,
    },
    /// The log was written by a version of Ringleader with another log format.
    #[error(
        "{path} holds a Raft log in format {found}; this Ringleader reads format {expected}. Nothing was changed: run the version that wrote it, or start the group afresh (a new --data-dir)"
    )]
    OtherFormat {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The directory belongs to another node of the group.
    #[error("{path} belongs to driver {found}, not driver {expected}; nothing was changed")]
    OtherNode {
        /// The file.
        path: PathBuf,
        /// Its node id.
        found: u64,
        /// Ours.
        expected: u64,
    },
}

/// The shared redb file of one driver.
#[derive(Clone)]
pub struct RaftFile {
    pub(super) db: Arc<Database>,
    pub(super) path: PathBuf,
}

impl RaftFile {
    /// Opens (or creates) `dir/raft.redb` for node `node` of the group `fingerprint`, and
    /// checks every log entry.
    pub fn open(dir: &Path, node: u64, fingerprint: &str, peers: &str) -> Result<RaftFile, OpenError> {
        let path = dir.join(FILE_NAME);
        // Checked before redb opens (and perhaps repairs) the file: a directory of another
        // group or node is left exactly as it was.
        check_identity(dir, node, fingerprint, peers)?;
        let damaged = |e: &dyn std::fmt::Display| OpenError::Damaged {
            path: path.clone(),
            message: e.to_string(),
        };
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(OpenError::InUse(path)),
            Err(e) => return Err(damaged(&e)),
        };
        let file = RaftFile {
            db: Arc::new(db),
            path: path.clone(),
        };
        file.verify_log()?;
        Ok(file)
    }

    fn verify_log(&self) -> Result<(), OpenError> {
        let read = self.db.begin_read().map_err(|e| self.damaged(&e))?;
        let table = match read.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.damaged(&e)),
        };
        for item in table.iter().map_err(|e| self.damaged(&e))? {
            let (index, bytes) = item.map_err(|e| self.damaged(&e))?;
            decode_entry(bytes.value()).map_err(|reason| OpenError::CorruptEntry {
                path: self.path.clone(),
                index: index.value(),
                reason,
            })?;
        }
        Ok(())
    }

    fn damaged(&self, e: &dyn std::fmt::Display) -> OpenError {
        OpenError::Damaged {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Reads a META record.
    pub(super) fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AnyError> {
        let read = self.db.begin_read().map_err(|e| AnyError::new(&e))?;
        let table = match read.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(AnyError::new(&e)),
        };
        let Some(value) = table.get(key).map_err(|e| AnyError::new(&e))? else {
            return Ok(None);
        };
        postcard::from_bytes(value.value())
            .map(Some)
            .map_err(|e| AnyError::error(format!("{}: record {key}: {e}", self.path.display())))
    }

    /// Writes a META record durably.
    pub(super) fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), AnyError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| AnyError::new(&e))?;
        let write = self.db.begin_write().map_err(|e| AnyError::new(&e))?;
        {
            let mut table = write.open_table(META).map_err(|e| AnyError::new(&e))?;
            table.insert(key, bytes.as_slice()).map_err(|e| AnyError::new(&e))?;
        }
        write.commit().map_err(|e| AnyError::new(&e))
    }
}

/// File naming the group and node a data directory belongs to.
pub const IDENTITY_FILE: &str = "raft-identity";

/// The encoding of the log's entries (postcard `Command`s) and of the snapshots (the
/// replicated state): raised whenever either changes, so a directory written by another
/// version is refused with a clear error instead of its entries looking corrupt.
pub const LOG_FORMAT: u32 = 11;

/// Compares `dir`'s identity file with this driver's group and id, or writes it (write, then
/// rename) for a new directory.
fn check_identity(dir: &Path, node: u64, fingerprint: &str, peers: &str) -> Result<(), OpenError> {
    let path = dir.join(IDENTITY_FILE);
    let io = |e: std::io::Error| OpenError::Damaged {
        path: path.clone(),
        message: e.to_string(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default()
                    .to_string()
            };
            let found = field("fingerprint");
            if found != fingerprint {
                return Err(OpenError::OtherGroup {
                    path: dir.join(FILE_NAME),
                    found: format!("{found}, peers {}", field("peers")),
                    expected: fingerprint.to_string(),
                    peers: peers.to_string(),
                });
            }
            let format: u32 = field("format").parse().unwrap_or(0);
            if format != LOG_FORMAT {
                return Err(OpenError::OtherFormat {
                    path: dir.join(FILE_NAME),
                    found: format,
                    expected: LOG_FORMAT,
                });
            }
            let found: u64 = field("node").parse().unwrap_or(0);
            if found != node {
                return Err(OpenError::OtherNode {
                    path: dir.join(FILE_NAME),
                    found,
                    expected: node,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let temp = dir.join(format!("{IDENTITY_FILE}.tmp"));
            std::fs::write(
                &temp,
                format!("fingerprint={fingerprint}\nnode={node}\npeers={peers}\nformat={LOG_FORMAT}\n"),
            )
            .map_err(io)?;
            std::fs::rename(&temp, &path).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

/// A log entry's stored form: CRC-32 (little endian) of the postcard bytes, then the bytes.
pub fn encode_entry(entry: &Entry<TypeConfig>) -> Result<Vec<u8>, AnyError> {
    let body = postcard::to_stdvec(entry).map_err(|e| AnyError::new(&e))?;
    let mut bytes = Vec::with_capacity(body.len() + 4);
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// A log entry from its stored form, or what is wrong with it (never a panic, whatever the
/// bytes).
pub fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, BadEntry> {
    let (crc, body) = bytes.split_first_chunk::<4>().ok_or(BadEntry::Short(bytes.len()))?;
    if u32::from_le_bytes(*crc) != crc32fast::hash(body) {
        return Err(BadEntry::Checksum);
    }
    Ok(postcard::from_bytes(body)?)
}

/// What is wrong with a stored log entry.
#[derive(Debug, thiserror::Error)]
pub enum BadEntry {
    /// Fewer bytes than its checksum.
    #[error("{0} bytes, shorter than its checksum")]
    Short(usize),
    /// Its bytes are not those its checksum was made of.
    #[error("checksum mismatch")]
    Checksum,
    /// Its bytes are not an entry.
    #[error("does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// The log side of the store.
#[derive(Clone)]
pub struct LogStore {
    file: RaftFile,
    committed: Arc<AtomicU64>,
}

impl LogStore {
    /// The log in `file`.
    pub fn new(file: RaftFile) -> LogStore {
        LogStore {
            file,
            committed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The commit index last saved (for status listings).
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn write_logs(
        &self,
        f: impl FnOnce(&mut redb::Table<u64, &[u8]>) -> Result<(), AnyError>,
    ) -> Result<(), StorageError> {
        let io = |e: AnyError| StorageError::from(StorageIOError::write_logs(e));
        let write = self.file.db.begin_write().map_err(|e| io(AnyError::new(&e)))?;
        {
            let mut table = write.open_table(LOG).map_err(|e| io(AnyError::new(&e)))?;
            f(&mut table).map_err(io)?;
        }
        write.commit().map_err(|e| io(AnyError::new(&e)))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let io = |e: AnyError| StorageError::from(StorageIOError::read_logs(e));
        let read = self.file.db.begin_read().map_err(|e| io(AnyError::new(&e)))?;
        let table = match read.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(io(AnyError::new(&e))),
        };
        let mut entries = Vec::new();
        for item in table.range(range).map_err(|e| io(AnyError::new(&e)))? {
            let (index, bytes) = item.map_err(|e| io(AnyError::new(&e)))?;
            let entry = decode_entry(bytes.value()).map_err(|reason| {
                StorageError::from(StorageIOError::read_log_at_index(
                    index.value(),
                    AnyError::error(format!(
                        "{}: log entry {} {reason}",
                        self.file.path.display(),
                        index.value()
                    )),
                ))
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId<u64>> = self
            .file
            .meta("purged")
            .map_err(|e| StorageError::from(StorageIOError::read_logs(e)))?;
        let io = |e: AnyError| StorageError::from(StorageIOError::read_logs(e));
        let read = self.file.db.begin_read().map_err(|e| io(AnyError::new(&e)))?;
        let last = match read.open_table(LOG) {
            Ok(table) => table
                .last()
                .map_err(|e| io(AnyError::new(&e)))?
                .map(|(_, bytes)| decode_entry(bytes.value()).map(|e| *e.get_log_id()))
                .transpose()
                .map_err(|reason| {
                    io(AnyError::error(format!(
                        "{}: last log entry {reason}",
                        self.file.path.display()
                    )))
                })?,
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(io(AnyError::new(&e))),
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        self.file
            .put_meta("vote", vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(e)))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.file
            .meta("vote")
            .map_err(|e| StorageError::from(StorageIOError::read_vote(e)))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError> {
        if let Some(c) = committed {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        self.file
            .put_meta("committed", &committed)
            .map_err(|e| StorageError::from(StorageIOError::write(e)))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError> {
        let committed: Option<Option<LogId<u64>>> = self
            .file
            .meta("committed")
            .map_err(|e| StorageError::from(StorageIOError::read(e)))?;
        let committed = committed.flatten();
        if let Some(c) = committed {
            self.committed.store(c.index, Ordering::Relaxed);
        }
        Ok(committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.write_logs(|table| {
            for entry in entries {
                let bytes = encode_entry(&entry)?;
                table
                    .insert(entry.get_log_id().index, bytes.as_slice())
                    .map_err(|e| AnyError::new(&e))?;
            }
            Ok(())
        })?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.write_logs(|table| {
            table
                .retain_in(log_id.index.., |_, _| false)
                .map_err(|e| AnyError::new(&e))
        })
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.file
            .put_meta("purged", &log_id)
            .map_err(|e| StorageError::from(StorageIOError::write_logs(e)))?;
        self.write_logs(|table| {
            table
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(|e| AnyError::new(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_another_log_format_or_node_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(RaftFile::open(dir.path(), 1, "g", "1=a:1").expect("a new directory"));
        let store = std::fs::read(dir.path().join(FILE_NAME)).expect("store");
        let identity = dir.path().join(IDENTITY_FILE);
        let text = std::fs::read_to_string(&identity).expect("identity");
        std::fs::write(&identity, text.replace(&format!("format={LOG_FORMAT}"), "format=0")).expect("write");
        assert!(matches!(
            RaftFile::open(dir.path(), 1, "g", "1=a:1"),
            Err(OpenError::OtherFormat { found: 0, .. })
        ));
        std::fs::write(&identity, &text).expect("write");
        assert!(matches!(
            RaftFile::open(dir.path(), 2, "g", "1=a:1"),
            Err(OpenError::OtherNode {
                found: 1,
                expected: 2,
                ..
            })
        ));
        assert!(std::fs::read(dir.path().join(FILE_NAME)).expect("store") == store);
        assert!(RaftFile::open(dir.path(), 1, "g", "1=a:1").is_ok());
    }
}
