//! Accumulators: counters and sums that closures add to through their state
//! (`map_with(acc.clone(), |acc, row| { acc.add(1); … })`), read by the program after an
//! action. Each task of a job counts once, from its first recorded success, however often
//! it was retried, recomputed or speculated (see `ringleader_core::plan::accumulator`); a failed
//! job's updates are dropped.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock};

use ringleader_core::plan::accumulator::{Accumulated, Amount, merge_into};
use ringleader_core::sync::lock;
use serde::{Deserialize, Serialize};

/// The program's totals, by accumulator id (unique in the process).
fn totals() -> &'static Mutex<BTreeMap<u64, Accumulated>> {
    static TOTALS: OnceLock<Mutex<BTreeMap<u64, Accumulated>>> = OnceLock::new();
    TOTALS.get_or_init(Mutex::default)
}

/// Adds a finished job's totals to the program's.
pub(crate) fn record_job(updates: &[Accumulated]) {
    merge_into(&mut lock(totals()), updates);
}

mod sealed {
    /// Seals [`super::Accumulable`]: the driver adds and shows these types.
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for u64 {}
    impl Sealed for f64 {}
}

/// A type an accumulator sums: `i64`, `u64` (both wrap on overflow) or `f64`.
pub trait Accumulable: Copy + Send + Sync + 'static + sealed::Sealed {
    /// As the amount the cluster carries.
    fn amount(self) -> Amount;
    /// Back from one (zero for an amount of another type).
    fn of(amount: Amount) -> Self;
    /// The sum of nothing.
    fn zero() -> Self;
}

impl Accumulable for i64 {
    fn amount(self) -> Amount {
        Amount::I64(self)
    }
    fn of(amount: Amount) -> Self {
        if let Amount::I64(v) = amount { v } else { 0 }
    }
    fn zero() -> Self {
        0
    }
}

impl Accumulable for u64 {
    fn amount(self) -> Amount {
        Amount::U64(self)
    }
    fn of(amount: Amount) -> Self {
        if let Amount::U64(v) = amount { v } else { 0 }
    }
    fn zero() -> Self {
        0
    }
}

impl Accumulable for f64 {
    fn amount(self) -> Amount {
        Amount::F64(self)
    }
    fn of(amount: Amount) -> Self {
        if let Amount::F64(v) = amount { v } else { 0.0 }
    }
    fn zero() -> Self {
        0.0
    }
}

/// A named counter or sum: closures [`add`](Accumulator::add) to it through their state,
/// the program reads its [`value`](Accumulator::value) after an action.
#[derive(Serialize, Deserialize)]
pub struct Accumulator<T> {
    id: u64,
    name: String,
    #[serde(skip)]
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Accumulator<T> {
    fn clone(&self) -> Self {
        Accumulator {
            id: self.id,
            name: self.name.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Accumulator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Accumulator({})", self.name)
    }
}

impl<T: Accumulable> Accumulator<T> {
    /// A new accumulator at zero.
    pub(crate) fn new(name: &str) -> Accumulator<T> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        record_job(&[Accumulated {
            id,
            name: name.to_string(),
            amount: T::zero().amount(),
        }]);
        Accumulator {
            id,
            name: name.to_string(),
            _value: PhantomData,
        }
    }

    /// Adds `amount`: inside a task, to the task's updates (counted when its job succeeds);
    /// in the program itself, to the total at once.
    pub fn add(&self, amount: T) {
        if !ringleader_core::plan::accumulator::add(self.id, &self.name, amount.amount()) {
            record_job(&[Accumulated {
                id: self.id,
                name: self.name.clone(),
                amount: amount.amount(),
            }]);
        }
    }

    /// The total so far: every task of every succeeded job counted once. In a task it is
    /// what the program had when the task's plan was made (always zero on a cluster's
    /// workers): read it in the program, after an action.
    pub fn value(&self) -> T {
        lock(totals()).get(&self.id).map_or_else(T::zero, |a| T::of(a.amount))
    }

    /// Its name (the job page lists it under it).
    pub fn name(&self) -> &str {
        &self.name
    }
}
