//! Closure shipping: a closure becomes a monomorphised trampoline `fn`, recorded as the
//! address of its table entry relative to a fixed anchor function in the same binary.
//!
//! Rust cannot serialise a closure, but a closure that captures nothing is a zero-sized
//! type: its whole meaning is its type, and a trampoline generic over that type can conjure
//! it from nothing. Each trampoline a plan may name is an entry of the trampoline table: a
//! constant [`Trampoline`] (made by [`ship!`](crate::ship)) holding a tag and the function.
//! The plan stores the entry's offset from [`anchor`]; a process of the same executable
//! (checked by content hash before any offset is used) adds its own anchor address back,
//! and [`Shipped::resolve`] calls nothing unless the offset lands, inside this executable,
//! on an entry tagged with the right signature. Position-independent executables keep the
//! offset stable across processes.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

/// The fixed point every shipped function is measured from.
///
/// It must stay a real, non-inlined function so that it has an address in every build.
#[inline(never)]
pub fn anchor() -> u64 {
    std::hint::black_box(0x5249_4e47_4c45_4144)
}

fn anchor_address() -> usize {
    anchor as fn() -> u64 as usize
}

/// Compile-time check that a closure captures nothing, with a message telling what to do.
pub const fn assert_no_capture<F>() {
    assert!(
        std::mem::size_of::<F>() == 0,
        "a Ringleader closure must not capture its environment: pass the data it needs with \
         `map_with(state, |state, x| ...)` (the state is serialised and shipped with the plan)"
    );
}

/// Produces the value of a zero-sized closure type from nothing.
///
/// The trampolines that conjure are `unsafe fn`s: their contract (a closure type the job
/// API was given a value of and checked) is what makes conjuring sound. Called under it,
/// with a closure that captures nothing, one builds:
/// ```
/// fn ship<F: Fn(i64) -> i64 + Copy + 'static>(_: F) {
///     // SAFETY: a value of `F` was given, and it is zero-sized and `Copy`.
///     let _ = unsafe { ringleader_core::ops::narrow::map::<i64, i64, F>(&[], Box::new(std::iter::empty())) };
/// }
/// ship(|x| x + 1);
/// ```
/// With one that captures, it does not build even then:
/// ```compile_fail
/// fn ship<F: Fn(i64) -> i64 + 'static>(_: F) {
///     let _ = unsafe { ringleader_core::ops::narrow::map::<i64, i64, F>(&[], Box::new(std::iter::empty())) };
/// }
/// let offset = 5i64;
/// ship(move |x| x + offset);
/// ```
/// And safe code cannot call one at all, so it cannot conjure a closure type it never had a
/// value of, such as one capturing an uninhabited value (named here through a function that
/// could never be called):
/// ```compile_fail,E0133
/// fn ship<F: Fn(i64) -> i64 + 'static>(_: fn(std::convert::Infallible) -> F) {
///     let _ = ringleader_core::ops::narrow::map::<i64, i64, F>(&[], Box::new(std::iter::empty()));
/// }
/// fn never(n: std::convert::Infallible) -> impl Fn(i64) -> i64 {
///     move |x| {
///         let _ = &n;
///         x
///     }
/// }
/// ship(never);
/// ```
///
/// # Safety
/// `F` must be a zero-sized closure (or other zero-sized type with no invariants); the
/// API only calls it for types checked with [`assert_no_capture`].
pub unsafe fn conjure<F>() -> F {
    // A compile-time check, per instantiation: a trampoline instantiated with a capturing
    // closure's type (possible in safe code, by naming a generic parameter) does not build.
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "a Ringleader closure must not capture its environment"
        )
    };
    // SAFETY: reading a zero-sized value touches no memory; a dangling, aligned pointer is
    // valid for zero-sized reads, and the caller guarantees `F` has no invariants.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}

mod sealed {
    /// Seals [`super::Signature`]: only this crate declares shippable signatures.
    pub trait Sealed {}
}

/// A function-pointer type that may be shipped. Implemented only for the trampoline
/// signatures the executor knows, so an offset can never be resolved as something else.
pub trait Signature: Copy + sealed::Sealed + 'static {
    /// Tells this signature's table entries from every other's.
    const TAG: u64;
}

/// Declares a trampoline signature as shippable.
#[macro_export]
#[doc(hidden)]
macro_rules! __shippable {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::plan::shipped::__private::Sealed for $t {}
        impl $crate::plan::shipped::Signature for $t {
            const TAG: u64 = $crate::plan::shipped::__private::tag(stringify!($t));
        }
    )*};
}

/// Marks every entry of the trampoline table (with the signature's tag beside it).
const TABLE_MARK: u64 = 0x7269_6e67_6c65_6164_u64 ^ 0x9e37_79b9_7f4a_7c15;

/// An entry of the trampoline table: a function a plan may name, and the tag that says
/// it is one. Made in constant context by [`ship!`](crate::ship), so each lives in the
/// executable's read-only data for as long as the process.
#[repr(C)]
pub struct Trampoline<S: 'static> {
    mark: u64,
    tag: u64,
    f: S,
}

impl<S: Signature> Trampoline<S> {
    /// The entry for `f`.
    pub const fn new(f: S) -> Self {
        Trampoline {
            mark: TABLE_MARK,
            tag: S::TAG,
            f,
        }
    }
}

/// Records a trampoline for a plan: `ship!(narrow::map::<T, U, F> as StepFn)` is a
/// [`Shipped`] naming a constant table entry of that function.
#[macro_export]
macro_rules! ship {
    ($f:expr) => {
        $crate::plan::shipped::Shipped::new(&const { $crate::plan::shipped::Trampoline::new($f) })
    };
}

#[doc(hidden)]
pub mod __private {
    pub use super::sealed::Sealed;

    /// FNV-1a of a signature's name, at compile time.
    pub const fn tag(name: &str) -> u64 {
        let bytes = name.as_bytes();
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        let mut i = 0;
        while i < bytes.len() {
            hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        hash
    }
}

/// The readable address ranges of this process's executable (not of its libraries).
fn executable_ranges() -> &'static [(usize, usize)] {
    static RANGES: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();
    RANGES.get_or_init(|| {
        unsafe extern "C" fn first_object(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: the loader passes a valid `info` for the duration of the call; `data`
            // is the vector below. The first object it reports is the executable.
            unsafe {
                let ranges = &mut *(data as *mut Vec<(usize, usize)>);
                let info = &*info;
                for i in 0..info.dlpi_phnum as usize {
                    let header = &*info.dlpi_phdr.add(i);
                    if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_R != 0 {
                        let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
                        ranges.push((start, start.saturating_add(header.p_memsz as usize)));
                    }
                }
            }
            1
        }
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        // SAFETY: the callback only writes into `ranges`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(first_object), &mut ranges as *mut _ as *mut libc::c_void) };
        ranges
    })
}

/// Why a plan's offset names no trampoline of this executable.
#[derive(Debug, thiserror::Error)]
#[error(
    "the plan names a function at offset {offset:+#x} that is not an entry of this executable's trampoline table: the plan was corrupted or built by another binary"
)]
pub struct NotATrampoline {
    /// The offset found in the plan.
    pub offset: i64,
}

/// A trampoline of signature `S`, recorded as its offset from [`anchor`].
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shipped<S> {
    offset: i64,
    #[serde(skip)]
    _signature: PhantomData<fn() -> S>,
}

impl<S> Clone for Shipped<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for Shipped<S> {}

impl<S> std::fmt::Debug for Shipped<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shipped({:+#x})", self.offset)
    }
}

impl<S> PartialEq for Shipped<S> {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
    }
}
impl<S> Eq for Shipped<S> {}

impl<S: Signature> Shipped<S> {
    /// Records the table entry `entry` as an offset from the anchor of this binary (use
    /// [`ship!`](crate::ship), which makes the entry a constant).
    pub fn new(entry: &'static Trampoline<S>) -> Self {
        let address = entry as *const Trampoline<S> as usize;
        Shipped {
            offset: address as i64 - anchor_address() as i64,
            _signature: PhantomData,
        }
    }

    /// The offset as recorded in the plan.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The function the offset names in this process, if it lands on an entry of this
    /// executable's trampoline table tagged with signature `S`; an error otherwise, never a
    /// jump to an arbitrary address.
    ///
    /// # Safety
    /// The offset must have been recorded by [`Shipped::new`] in a process of the same
    /// executable (the cluster checks the binary's content hash before running a plan):
    /// the check finds a misplaced offset, not a forged entry.
    pub unsafe fn resolve(&self) -> Result<S, NotATrampoline> {
        let refused = || NotATrampoline { offset: self.offset };
        let size = std::mem::size_of::<Trampoline<S>>();
        let address = (anchor_address() as i64)
            .checked_add(self.offset)
            .and_then(|a| usize::try_from(a).ok())
            .filter(|a| a % std::mem::align_of::<Trampoline<S>>() == 0)
            .ok_or_else(refused)?;
        let inside = executable_ranges()
            .iter()
            .any(|&(start, end)| address >= start && address.checked_add(size).is_some_and(|e| e <= end));
        if !inside {
            return Err(refused());
        }
        // SAFETY: the words read lie inside a readable segment of this executable and are
        // aligned; `f` is read only once the mark and tag say this is an entry of `S`.
        unsafe {
            let entry = address as *const Trampoline<S>;
            let mark = std::ptr::addr_of!((*entry).mark).read_volatile();
            let tag = std::ptr::addr_of!((*entry).tag).read_volatile();
            if mark != TABLE_MARK || tag != S::TAG {
                return Err(refused());
            }
            Ok(std::ptr::addr_of!((*entry).f).read())
        }
    }
}
