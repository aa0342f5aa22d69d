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
//!
//! Only a task's reads are mapped: outside [`watch_task`] nobody would check the damage
//! (the worker serving a block, a client reading a footer), so [`map`] reads the bytes
//! instead, and a file that shrank is a short read, an error naming it.
//!
//! A slot is published in three steps the handler can tell apart: claimed, filled, ready
//! (`state`); the handler reads a slot only when it is ready, and counts itself in
//! `IN_HANDLER`. Unregistering marks the slot not ready, waits until no handler runs, then
//! clears it, so a handler never matches a half-written range nor writes a freed flag.

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

/// A slot nobody holds.
const FREE: usize = 0;
/// A slot claimed by a mapping being registered or unregistered: the handler skips it.
const CLAIMED: usize = 1;
/// A slot whose range and flag are written: the handler may match it.
const READY: usize = 2;

/// One registered mapping: its address range and the flag its fault sets.
struct Slot {
    state: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    damaged: AtomicPtr<AtomicBool>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    state: AtomicUsize::new(FREE),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    damaged: AtomicPtr::new(std::ptr::null_mut()),
};

static SLOTS_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();
/// `SIGBUS` handlers running now, in any thread.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

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
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let handled = replace_page(address);
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    if handled {
        return;
    }
    // Not ours (or the page could not be replaced): the default action, which ends the
    // process when the faulting access runs again.
    // SAFETY: resetting a signal's disposition is async-signal-safe.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

/// Puts a page of zeros at `address` if it lies in a ready slot's mapping, and marks that
/// mapping damaged: whether it did.
fn replace_page(address: usize) -> bool {
    for slot in &SLOTS_TABLE {
        if slot.state.load(Ordering::SeqCst) != READY {
            continue;
        }
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
                // SAFETY: the flag outlives the slot's registration: `Mapping::drop` waits
                // for running handlers before it lets the flag go.
                unsafe { (*flag).store(true, Ordering::Release) };
            }
            if zeros != libc::MAP_FAILED {
                return true;
            }
        }
    }
    false
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
            // No new handler matches the slot once it is not ready; one that matched it
            // before may still write its flag: wait until none runs.
            slot.state.store(CLAIMED, Ordering::SeqCst);
            while IN_HANDLER.load(Ordering::SeqCst) > 0 {
                std::hint::spin_loop();
            }
            slot.start.store(0, Ordering::Relaxed);
            slot.end.store(0, Ordering::Relaxed);
            slot.damaged.store(std::ptr::null_mut(), Ordering::Relaxed);
            slot.state.store(FREE, Ordering::Release);
        }
    }
}

/// Whether the code running on this thread is a task watched by [`watch_task`].
pub fn in_task() -> bool {
    OPENED.with(|opened| opened.borrow().is_some())
}

/// Maps `len` bytes of `file` (at `path`) from `offset`, read-only, as an Arrow buffer;
/// `populate` reads every page in at once. The current task (see [`watch_task`]) fails if
/// the file shrinks under the mapping before it ends.
pub fn map(file: &File, path: &Path, offset: u64, len: usize, populate: bool) -> Result<Buffer> {
    if !in_task() {
        return read_range(file, path, offset, len);
    }
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
            .state
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(i) = slot {
        let start = map.as_ptr() as usize;
        let s = &SLOTS_TABLE[i];
        s.damaged
            .store(Arc::as_ptr(&damaged) as *mut AtomicBool, Ordering::Relaxed);
        s.start.store(start, Ordering::Relaxed);
        s.end.store(start + map.len(), Ordering::Relaxed);
        // Range and flag are complete before any handler may look at them.
        s.state.store(READY, Ordering::SeqCst);
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

/// `len` bytes of `file` from `offset`, read into memory: a file shorter than that is an
/// error naming it.
fn read_range(file: &File, path: &Path, offset: u64, len: usize) -> Result<Buffer> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, offset).map_err(|e| Error::io(path, e))?;
    Ok(Buffer::from_vec(bytes))
}

/// The files mapped by code run under [`watch`], with the flags their faults set: checked
/// once every page they handed out has been read (by this thread or another).
#[derive(Debug, Default)]
pub struct Watched(Vec<Opened>);

impl Watched {
    /// An error naming the first file that shrank under its mapping, if one did.
    pub fn check(&self) -> Result<()> {
        match self.0.iter().find(|(_, damaged)| damaged.load(Ordering::Acquire)) {
            Some((path, _)) => Err(Error::Io {
                path: path.clone(),
                error: std::io::Error::other(
                    "the file shrank while it was read (was it rewritten during the job?); what was read from it is discarded",
                ),
            }),
            None => Ok(()),
        }
    }
}

/// Runs `f` as a task (its reads are mapped, see [`in_task`]) and returns what it returned
/// with the files it mapped, to [`Watched::check`] once their pages were all read.
pub fn watch<T>(f: impl FnOnce() -> T) -> (T, Watched) {
    let outer = OPENED.with(|opened| opened.borrow_mut().replace(Vec::new()));
    let result = f();
    let opened = OPENED.with(|opened| std::mem::replace(&mut *opened.borrow_mut(), outer));
    (result, Watched(opened.unwrap_or_default()))
}

/// Runs a task, then fails it if a file it mapped (on this thread) shrank under it.
pub fn watch_task<T>(task: impl FnOnce() -> Result<T>) -> Result<T> {
    let (result, watched) = watch(task);
    watched.check()?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot caught half-written (claimed, its range being filled or cleared) is never
    /// matched: a fault elsewhere cannot mark its mapping damaged. Only ready slots are.
    #[test]
    fn a_fault_matches_only_ready_slots() {
        let page = page_size();
        // A page this test owns, standing for a faulting mapping (the handler puts zeros
        // there, which changes nothing for an anonymous page).
        // SAFETY: a fresh private anonymous mapping, unmapped at the end of the test.
        let region = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(region, libc::MAP_FAILED);
        let address = region as usize;
        let flag = Arc::new(AtomicBool::new(false));
        let i = (0..SLOTS)
            .find(|&i| {
                SLOTS_TABLE[i]
                    .state
                    .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .expect("a free slot");
        let slot = &SLOTS_TABLE[i];
        slot.damaged
            .store(Arc::as_ptr(&flag) as *mut AtomicBool, Ordering::Relaxed);
        // Half-published the old way round: an end, no start yet (0), so [0, end) would
        // hold the fault's address.
        slot.end.store(address + page, Ordering::Relaxed);
        assert!(!replace_page(address), "a claimed slot was matched");
        assert!(!flag.load(Ordering::Acquire));
        // Ready, it is matched and its mapping marked.
        slot.start.store(address, Ordering::Relaxed);
        slot.state.store(READY, Ordering::SeqCst);
        assert!(replace_page(address));
        assert!(flag.load(Ordering::Acquire));
        slot.state.store(CLAIMED, Ordering::SeqCst);
        slot.start.store(0, Ordering::Relaxed);
        slot.end.store(0, Ordering::Relaxed);
        slot.damaged.store(std::ptr::null_mut(), Ordering::Relaxed);
        slot.state.store(FREE, Ordering::Release);
        // SAFETY: the region mapped above.
        unsafe { libc::munmap(region, page) };
    }
}
