//! Closure shipping: a closure becomes a monomorphised trampoline `fn`, recorded as its
//! address relative to a fixed anchor function in the same binary.
//!
//! Rust cannot serialise a closure, but a closure that captures nothing is a zero-sized
//! type: its whole meaning is its type, and a trampoline generic over that type can conjure
//! it from nothing. The plan stores the trampoline's offset from [`anchor`]; a process of the
//! same executable (checked by content hash before any offset is used) adds its own anchor
//! address back. Position-independent executables keep the offset stable across processes.

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
/// A trampoline instantiated with a closure that captures nothing builds:
/// ```
/// fn ship<F: Fn(i64) -> i64 + 'static>(_: F) {
///     let _ = ringleader_core::ops::narrow::map::<i64, i64, F>(&[], Box::new(std::iter::empty()));
/// }
/// ship(|x| x + 1);
/// ```
/// and with one that captures, it does not (in safe code, nothing can conjure it):
/// ```compile_fail
/// fn ship<F: Fn(i64) -> i64 + 'static>(_: F) {
///     let _ = ringleader_core::ops::narrow::map::<i64, i64, F>(&[], Box::new(std::iter::empty()));
/// }
/// let offset = 5i64;
/// ship(move |x| x + offset);
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
pub trait Signature: Copy + sealed::Sealed {}

/// Declares a trampoline signature as shippable.
#[macro_export]
#[doc(hidden)]
macro_rules! __shippable {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::shipped::__private::Sealed for $t {}
        impl $crate::shipped::Signature for $t {}
    )*};
}

#[doc(hidden)]
pub mod __private {
    pub use super::sealed::Sealed;
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
    /// Records `f` as an offset from the anchor of this binary.
    pub fn new(f: S) -> Self {
        const {
            assert!(std::mem::size_of::<S>() == std::mem::size_of::<usize>());
        }
        // SAFETY: `S` is one of the sealed function-pointer signatures, which are
        // pointer-sized plain addresses.
        let address: usize = unsafe { std::mem::transmute_copy(&f) };
        Shipped {
            offset: address as i64 - anchor_address() as i64,
            _signature: PhantomData,
        }
    }

    /// The offset as recorded in the plan.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Turns the offset back into a callable function of this process.
    ///
    /// # Safety
    /// The offset must have been recorded by [`Shipped::new`] in a process of the same
    /// executable (the cluster checks the binary's content hash before running a plan).
    pub unsafe fn resolve(&self) -> S {
        let address = (anchor_address() as i64 + self.offset) as usize;
        // SAFETY: per the contract above, `address` is the entry of a function of type `S`.
        unsafe { std::mem::transmute_copy(&address) }
    }
}
