//! Accumulators: counters and sums that closures add to as a task runs. A task's updates
//! are gathered while it runs (on the task's own thread) and travel with its result; the
//! embedded engine and the driver count the updates of each task of a job exactly once,
//! from the attempt whose success was recorded first, however often the task was retried,
//! recomputed or speculated. The job's totals reach the program at the job's end.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::proto;

/// An accumulator's value: a sum of one numeric type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Amount {
    /// A signed count or sum (wraps on overflow, as Spark's `LongAccumulator` does).
    I64(i64),
    /// An unsigned count or sum (wraps on overflow).
    U64(u64),
    /// A floating-point sum.
    F64(f64),
}

impl Amount {
    /// The sum of two amounts of one type; a mismatch keeps `self` (never made by the API,
    /// whose handles are typed).
    pub fn plus(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::I64(a), Amount::I64(b)) => Amount::I64(a.wrapping_add(b)),
            (Amount::U64(a), Amount::U64(b)) => Amount::U64(a.wrapping_add(b)),
            (Amount::F64(a), Amount::F64(b)) => Amount::F64(a + b),
            (a, _) => a,
        }
    }

    /// As text, for listings.
    pub fn show(&self) -> String {
        match self {
            Amount::I64(v) => v.to_string(),
            Amount::U64(v) => v.to_string(),
            Amount::F64(v) => v.to_string(),
        }
    }
}

/// One accumulator's total (over a task, a job or a program).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accumulated {
    /// The accumulator's id (unique in its program).
    pub id: u64,
    /// Its name, for listings.
    pub name: String,
    /// Its total.
    pub amount: Amount,
}

impl Accumulated {
    /// As the protocol carries it.
    pub fn to_proto(&self) -> proto::Accumulated {
        let value = match self.amount {
            Amount::I64(v) => proto::accumulated::Value::Signed(v),
            Amount::U64(v) => proto::accumulated::Value::Unsigned(v),
            Amount::F64(v) => proto::accumulated::Value::Float(v),
        };
        proto::Accumulated {
            id: self.id,
            name: self.name.clone(),
            value: Some(value),
        }
    }

    /// From the protocol (`None` without a value).
    pub fn from_proto(p: &proto::Accumulated) -> Option<Accumulated> {
        let amount = match p.value? {
            proto::accumulated::Value::Signed(v) => Amount::I64(v),
            proto::accumulated::Value::Unsigned(v) => Amount::U64(v),
            proto::accumulated::Value::Float(v) => Amount::F64(v),
        };
        Some(Accumulated {
            id: p.id,
            name: p.name.clone(),
            amount,
        })
    }
}

/// Adds `updates` into `totals`, accumulator by accumulator.
pub fn merge_into(totals: &mut BTreeMap<u64, Accumulated>, updates: &[Accumulated]) {
    for u in updates {
        totals
            .entry(u.id)
            .and_modify(|t| t.amount = t.amount.plus(u.amount))
            .or_insert_with(|| u.clone());
    }
}

/// The totals of several tasks' updates, by accumulator id.
pub fn totals<'a>(tasks: impl IntoIterator<Item = &'a Vec<Accumulated>>) -> Vec<Accumulated> {
    let mut sums = BTreeMap::new();
    for updates in tasks {
        merge_into(&mut sums, updates);
    }
    sums.into_values().collect()
}

thread_local! {
    /// The running task's updates (none outside a task).
    static TASK: RefCell<Option<BTreeMap<u64, Accumulated>>> = const { RefCell::new(None) };
}

/// Puts back the updates of the task (or none) that was running on this thread before a
/// nested one, also when the nested one panics.
struct Restore(Option<Option<BTreeMap<u64, Accumulated>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(outer) = self.0.take() {
            TASK.with(|t| *t.borrow_mut() = outer);
        }
    }
}

/// Runs a task, returning what it returned and the accumulator updates its closures made
/// on this thread (a task that panics leaves none behind).
pub fn gather<R>(task: impl FnOnce() -> R) -> (R, Vec<Accumulated>) {
    let restore = Restore(Some(TASK.with(|t| t.borrow_mut().replace(BTreeMap::new()))));
    let result = task();
    let updates = TASK.with(|t| t.borrow_mut().take());
    drop(restore);
    (result, updates.map(|u| u.into_values().collect()).unwrap_or_default())
}

/// Adds `amount` to accumulator `id` for the running task; `false` outside a task (the
/// caller adds it to the program's totals directly).
pub fn add(id: u64, name: &str, amount: Amount) -> bool {
    TASK.with(|t| match t.borrow_mut().as_mut() {
        Some(updates) => {
            merge_into(
                updates,
                &[Accumulated {
                    id,
                    name: name.to_string(),
                    amount,
                }],
            );
            true
        }
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tasks_updates_are_gathered_on_its_thread_and_nested_tasks_keep_their_own() {
        assert!(!add(1, "outside", Amount::U64(5)), "no task: not gathered");
        let (((), inner), outer) = gather(|| {
            add(1, "rows", Amount::U64(2));
            let inner = gather(|| {
                add(1, "rows", Amount::U64(100));
            });
            add(1, "rows", Amount::U64(3));
            add(2, "sum", Amount::F64(0.5));
            inner
        });
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].amount, Amount::U64(100));
        assert_eq!(
            outer.iter().map(|a| a.amount).collect::<Vec<_>>(),
            vec![Amount::U64(5), Amount::F64(0.5)]
        );
        // A task that panics leaves nothing behind on its thread.
        let panicked = std::panic::catch_unwind(|| {
            gather(|| {
                add(3, "lost", Amount::I64(1));
                panic!("a task fails");
            })
        });
        assert!(panicked.is_err());
        assert!(!add(3, "lost", Amount::I64(1)), "the failed task's updates linger");
        let both = totals([&outer, &inner]);
        assert_eq!(both[0].amount, Amount::U64(105));
        for a in &both {
            assert_eq!(Accumulated::from_proto(&a.to_proto()).as_ref(), Some(a));
        }
    }
}
