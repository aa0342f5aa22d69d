//! Memory-mapped inputs that fail a task, not the process, when their file shrinks.
//!
//! Records and Arrow IPC inputs are memory-mapped and handed on without copying, so any
//! operator may touch their pages. If the file is truncated meanwhile (someone rewrites an
//! input while a job reads it), touching a page past the new end raises `SIGBUS`, which
//! would kill the executor and every task in it. Each mapping made here is registered; a
//! `SIGBUS` inside a registered mapping puts a page of zeros there, marks the mapping
//! damaged and lets the reader go on. [`watch_task`] runs a task and turns any damage to
//! the mappings it opened into an error naming the file, so zeros never reach a result.
//! A `SIGBUS` anywhere else keeps its usual meaning: the process ends.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use arrow_buffer::Buffer;

use crate::error::{Error, Result};

/// Mappings registered at once; beyond this, a mapping is made without protection.
const SLOTS: usize = 1024;

/// One registered mapping: its address range and the flag its fault sets.
struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    damaged: AtomicPtr<AtomicBool>,
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    damaged: AtomicPtr::new(std::ptr::null_mut()),
    taken: AtomicBool::new(false),
};

static SLOTS_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();

/// A mapped file and the flag that says it shrank under its mapping.
type Opened = (PathBuf, Arc<AtomicBool>);

thread_local! {
    /// The mappings the task running on this thread opened (see [`watch_task`]).
    static OPENED: RefCell<Option<Vec<Opened>>> = const { RefCell::new(None) };
}

/// The `SIGBUS` handler: inside a registered mapping, a zero page and the damage flag.
extern "C" fn on_bus_error(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as usize;
    for slot in &SLOTS_TABLE {
        let (start, end) = (slot.start.load(Ordering::Acquire), slot.end.load(Ordering::Acquire));
        if start <= address && address < end {
            let page = page_size();
            let page_start = address & !(page - 1);
            // SAFETY: replaces one page of a mapping this module made and still owns
            // (the slot is cleared before the mapping is unmapped); mmap is a plain system
            // call, safe to make in a signal handler on Linux.
            let zeros = unsafe {
                libc::mmap(
                    page_start as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            let flag = slot.damaged.load(Ordering::Acquire);
            if !flag.is_null() {
                // SAFETY: the flag outlives the slot's registration (see `Mapping::drop`).
                unsafe { (*flag).store(true, Ordering::Release) };
            }
            if zeros != libc::MAP_FAILED {
                return;
            }
        }
    }
    // Not ours (or the page could not be replaced): the default action, which ends the
    // process when the faulting access runs again.
    // SAFETY: resetting a signal's disposition is async-signal-safe.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            PAGE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

fn install_handler() {
    INSTALL.call_once(|| {
        page_size();
        // SAFETY: a zeroed sigaction with our handler and SA_SIGINFO is a valid argument.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_bus_error as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    });
}

/// A registered mapping; unregistered before it is unmapped.
struct Mapping {
    map: memmap2::Mmap,
    slot: Option<usize>,
    /// The flag the handler sets, kept alive as long as the slot points at it.
    _damaged: Arc<AtomicBool>,
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let slot = &SLOTS_TABLE[i];
            slot.start.store(0, Ordering::Release);
            slot.end.store(0, Ordering::Release);
            slot.damaged.store(std::ptr::null_mut(), Ordering::Release);
            slot.taken.store(false, Ordering::Release);
        }
    }
}

/// Maps `len` bytes of `file` (at `path`) from `offset`, read-only, as an Arrow buffer;
/// `populate` reads every page in at once. The current task (see [`watch_task`]) fails if
/// the file shrinks under the mapping before it ends.
pub fn map(file: &File, path: &Path, offset: u64, len: usize, populate: bool) -> Result<Buffer> {
    install_handler();
    let mut options = memmap2::MmapOptions::new();
    options.offset(offset).len(len);
    if populate {
        options.populate();
    }
    // SAFETY: mapped read-only. A file changed under the mapping is the case this module
    // exists for: a shrunk file's pages read as zeros and the task fails.
    let map = unsafe { options.map(file) }.map_err(|e| Error::io(path, e))?;
    let damaged = Arc::new(AtomicBool::new(false));
    let slot = (0..SLOTS).find(|&i| {
        SLOTS_TABLE[i]
            .taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(i) = slot {
        let start = map.as_ptr() as usize;
        let s = &SLOTS_TABLE[i];
        s.damaged
            .store(Arc::as_ptr(&damaged) as *mut AtomicBool, Ordering::Release);
        s.end.store(start + map.len(), Ordering::Release);
        s.start.store(start, Ordering::Release);
    }
    OPENED.with(|opened| {
        if let Some(list) = opened.borrow_mut().as_mut() {
            list.push((path.to_path_buf(), damaged.clone()));
        }
    });
    let mapping = Mapping {
        map,
        slot,
        _damaged: damaged,
    };
    Ok(Buffer::from(bytes::Bytes::from_owner(mapping)))
}

/// Runs a task, then fails it if a file it mapped (on this thread) shrank under it.
pub fn watch_task<T>(task: impl FnOnce() -> Result<T>) -> Result<T> {
    let outer = OPENED.with(|opened| opened.borrow_mut().replace(Vec::new()));
    let result = task();
    let opened = OPENED.with(|opened| std::mem::replace(&mut *opened.borrow_mut(), outer));
    if let Some((path, _)) = opened
        .unwrap_or_default()
        .into_iter()
        .find(|(_, damaged)| damaged.load(Ordering::Acquire))
    {
        return Err(Error::Io {
            path: path.clone(),
            source: std::io::Error::other(
                "the file shrank while this task read it (was it rewritten during the job?); the task's result is discarded",
            ),
        });
    }
    result
}
