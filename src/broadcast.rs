//! Broadcast variables: a read-only value every task may read, sent to each worker once per
//! program instead of inside every task's plan. Closures stay capture-free: a task reaches
//! one through the state of `map_with` (and its friends), where only the handle travels.
//!
//! Embedded, the value stays in this process. On a cluster it is stored as a one-partition
//! dataset with a copy on every live worker (uploaded once, by Flight, never through the
//! driver group's log); an executor reads it from its worker's disk the first time a task
//! asks, and keeps it for the process. It is removed when the program ends.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};

use ringleader_core::data::{Data, decode};
use ringleader_core::io::source::Split;
use ringleader_core::sync::lock;
use serde::{Deserialize, Serialize};

/// Bytes of the value per stored row (the value travels as rows of byte pieces).
const PIECE_BYTES: usize = 1 << 20;

/// A value sent to every task once per worker: read it with [`Broadcast::value`] inside a
/// closure that gets the handle through `map_with`'s state.
#[derive(Serialize, Deserialize)]
pub struct Broadcast<T> {
    id: u64,
    home: Home,
    #[serde(skip)]
    value: OnceLock<Arc<T>>,
    #[serde(skip)]
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast {
            id: self.id,
            home: self.home.clone(),
            value: self.value.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Broadcast<{}>({})", std::any::type_name::<T>(), self.id)
    }
}

/// Where a broadcast value is.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Home {
    /// In this process's registry (the embedded engine).
    Local,
    /// A stored dataset of one partition, a copy on every worker.
    Stored(Split),
}

/// Values this process has: broadcast by it (embedded) or read by it (an executor), by id
/// (local) or by dataset (stored).
fn registry() -> &'static Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>> {
    static VALUES: OnceLock<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>> = OnceLock::new();
    VALUES.get_or_init(Mutex::default)
}

impl<T: Data> Broadcast<T> {
    /// A value kept in this process (embedded).
    pub(crate) fn local(id: u64, value: T) -> Broadcast<T> {
        let value = Arc::new(value);
        lock(registry()).insert(format!("local-{id}"), value.clone());
        let cell = OnceLock::new();
        let _ = cell.set(value);
        Broadcast {
            id,
            home: Home::Local,
            value: cell,
            _value: PhantomData,
        }
    }

    /// A value stored on the cluster as the one partition `split` names.
    pub(crate) fn stored(id: u64, split: Split) -> Broadcast<T> {
        Broadcast {
            id,
            home: Home::Stored(split),
            value: OnceLock::new(),
            _value: PhantomData,
        }
    }

    /// The value. On a worker, the first call in its executor reads it from the worker's
    /// disk (or another worker's); a read that fails panics, failing the task, which then
    /// runs again.
    pub fn value(&self) -> &T {
        self.value.get_or_init(|| match self.fetch() {
            Ok(value) => value,
            Err(e) => panic!("broadcast {}: {e}", self.id),
        })
    }

    /// The value, shared (for an iterator that outlives the handle's borrow).
    pub(crate) fn shared(&self) -> Arc<T> {
        self.value();
        self.value
            .get()
            .cloned()
            .unwrap_or_else(|| unreachable!("set by value()"))
    }

    fn key(&self) -> String {
        match &self.home {
            Home::Local => format!("local-{}", self.id),
            Home::Stored(split) => split.describe(),
        }
    }

    fn fetch(&self) -> ringleader_core::Result<Arc<T>> {
        let key = self.key();
        if let Some(value) = lock(registry()).get(&key).cloned() {
            return value
                .downcast::<T>()
                .map_err(|_| ringleader_core::Error::Plan(format!("broadcast {key} holds another type")));
        }
        let Home::Stored(split) = &self.home else {
            return Err(ringleader_core::Error::Plan(format!(
                "broadcast {key} is not in this process (a handle from another program?)"
            )));
        };
        let mut bytes = Vec::new();
        for chunk in ringleader_core::io::source::open(split, None)? {
            let ringleader_core::data::Chunk::Arrow(batch) = chunk? else {
                continue;
            };
            for (_, piece) in decode::<(u32, Vec<u8>)>(&batch)? {
                bytes.extend_from_slice(&piece);
            }
        }
        let value: Arc<T> = Arc::new(postcard::from_bytes(&bytes)?);
        lock(registry()).insert(key, value.clone());
        Ok(value)
    }
}

/// `value`'s bytes as stored rows: numbered pieces of [`PIECE_BYTES`].
pub(crate) fn pieces<T: Data>(value: &T) -> ringleader_core::Result<Vec<(u32, Vec<u8>)>> {
    let bytes = postcard::to_stdvec(value)?;
    Ok(bytes
        .chunks(PIECE_BYTES)
        .enumerate()
        .map(|(i, piece)| (i as u32, piece.to_vec()))
        .collect())
}

/// Broadcasts `value` for the program of `engine` (see [`crate::Context::broadcast`]).
pub(crate) fn share<T: Data>(engine: &crate::engine::Engine, value: T) -> crate::Result<Broadcast<T>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(cluster) = engine.cluster_client() else {
        return Ok(Broadcast::local(id, value));
    };
    let ipc = ringleader_core::data::ipc::to_stream_bytes(&[ringleader_core::data::encode(&pieces(&value)?)?])?;
    let total = ipc.len() as u64;
    let name = ringleader_core::io::store::broadcast_dataset(engine.session(), id);
    let (workers, _) = cluster.live_workers()?;
    if cluster.progress() {
        eprintln!(
            "broadcasting {total} bytes to {workers} workers as {}{name}",
            ringleader_core::io::store::URL_SCHEME
        );
    }
    engine.note_upload(name.clone());
    let mut request = crate::transfer::PutRequest::of_splits(vec![(Split::Inline { ipc }, total)], cluster.progress());
    request.name = name.clone();
    request.partitions = 1;
    request.replicas = workers.max(1);
    cluster.put(request)?;
    let info = cluster.dataset(&name)?;
    let locations = info
        .partitions
        .into_iter()
        .next()
        .map(|p| p.addresses)
        .unwrap_or_default();
    Ok(Broadcast::stored(
        id,
        Split::Stored {
            dataset: info.name,
            generation: info.generation,
            partition: 0,
            locations,
            column: None,
        },
    ))
}
