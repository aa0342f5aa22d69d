//! The stored-dataset namespace as compare-and-set transactions. Every change to a name is a
//! command naming the generation it expects the name to have: a write is placed (replicated
//! before its first byte moves) with the generation it will replace, and commits only if the
//! name still has it; a removal and a repair name the generation they act on. A write that
//! lost gets a [`Outcome::Conflict`] naming the generation that won; nothing committed is
//! replaced but by a write that expected it.

use ringleader_core::ids::WorkerId;

use super::records::{DatasetRecord, PendingDataset, pending_key};
use super::{ClusterState, Outcome};

/// How many removals' ids the state remembers (a retry comes within seconds of its first
/// attempt; these are thousands of removals later).
pub const REMEMBERED_REMOVALS: usize = 4096;

/// Why a write of a dataset may not place or commit: the name moved on since it began.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteConflict {
    /// The dataset was removed meanwhile.
    #[error("dataset {name} was removed meanwhile")]
    Removed {
        /// The dataset.
        name: String,
    },
    /// Another writer stored the name first.
    #[error("dataset {name} was stored by another writer meanwhile (generation {won} won)")]
    StoredByAnother {
        /// The dataset.
        name: String,
        /// The generation it has now.
        won: String,
    },
    /// Another writer replaced the generation this write expected.
    #[error("dataset {name} was replaced by another writer meanwhile (generation {won} won)")]
    ReplacedByAnother {
        /// The dataset.
        name: String,
        /// The generation it has now.
        won: String,
    },
    /// The write's placement is gone (given up, or expired).
    #[error(
        "the write of dataset {name} (generation {generation}) is no longer placed: it was given up, or placed too long ago; write it again"
    )]
    NoLongerPlaced {
        /// The dataset.
        name: String,
        /// The generation being written.
        generation: String,
    },
}

impl ClusterState {
    /// Whether the removal with the client's id `request` was applied.
    pub fn removed_by(&self, request: &str) -> bool {
        !request.is_empty() && self.removals.iter().any(|r| r == request)
    }

    /// The generation dataset `name` has now, if it exists.
    pub fn generation_of(&self, name: &str) -> Option<&str> {
        self.datasets.get(name).map(|d| d.generation.as_str())
    }

    /// Why the name `name` no longer has the generation `expected` (`None`: no dataset), if it
    /// does not.
    fn moved_on(&self, name: &str, expected: Option<&str>) -> Option<WriteConflict> {
        let name = name.to_string();
        match (expected, self.generation_of(&name)) {
            (expected, now) if expected == now => None,
            (_, None) => Some(WriteConflict::Removed { name }),
            (None, Some(won)) => Some(WriteConflict::StoredByAnother {
                won: won.to_string(),
                name,
            }),
            (Some(_), Some(won)) => Some(WriteConflict::ReplacedByAnother {
                won: won.to_string(),
                name,
            }),
        }
    }

    /// Places a write: it may send its partitions.
    pub(super) fn place_dataset(&mut self, pending: PendingDataset) -> Outcome {
        if let Some(conflict) = self.moved_on(&pending.name, pending.expected.as_deref()) {
            return Outcome::Conflict(conflict.to_string());
        }
        self.pending.insert(pending.key(), pending);
        Outcome::Done
    }

    /// Commits a placed write, if the name still has the generation it expected. A commit
    /// of the generation the name has already is a retry whose reply was lost: done.
    pub(super) fn commit_dataset(&mut self, record: DatasetRecord) -> Outcome {
        if self.generation_of(&record.name) == Some(record.generation.as_str()) {
            return Outcome::Done;
        }
        match self.settle_pending(&record.name, &record.generation) {
            Ok(()) => {
                self.datasets.insert(record.name.clone(), record);
                Outcome::Done
            }
            Err(conflict) => Outcome::Conflict(conflict.to_string()),
        }
    }

    /// Ends the placement of `generation` of `name`: fine if the name still has the generation
    /// it expected, else why not (a lost race, or a placement given up meanwhile).
    pub(super) fn settle_pending(&mut self, name: &str, generation: &str) -> Result<(), WriteConflict> {
        let Some(pending) = self.pending.remove(&pending_key(name, generation)) else {
            return Err(WriteConflict::NoLongerPlaced {
                name: name.to_string(),
                generation: generation.to_string(),
            });
        };
        match self.moved_on(name, pending.expected.as_deref()) {
            Some(conflict) => Err(conflict),
            None => Ok(()),
        }
    }

    /// Gives up a placed write.
    pub(super) fn abort_dataset(&mut self, name: &str, generation: &str) -> Outcome {
        match self.pending.remove(&pending_key(name, generation)) {
            Some(_) => Outcome::Done,
            None => Outcome::Stale,
        }
    }

    /// Removes dataset `name` if it is still `generation`; once per `request` (the client's
    /// id of the removal: a retry of an applied one is done, and changes nothing).
    pub(super) fn remove_dataset(&mut self, name: &str, generation: &str, request: &str) -> Outcome {
        if self.removed_by(request) {
            return Outcome::Done;
        }
        match self.generation_of(name) {
            Some(g) if g == generation => {
                self.datasets.remove(name);
                if !request.is_empty() {
                    if self.removals.len() == REMEMBERED_REMOVALS {
                        self.removals.pop_front();
                    }
                    self.removals.push_back(request.to_string());
                }
                Outcome::Done
            }
            Some(g) => Outcome::Conflict(format!(
                "dataset {name} was replaced meanwhile (generation {g} is current); nothing was removed"
            )),
            None => Outcome::Stale,
        }
    }

    /// Records a repaired partition's holders, if the dataset is still `generation`.
    pub(super) fn repair_dataset(
        &mut self,
        name: &str,
        generation: &str,
        partition: u32,
        holders: Vec<WorkerId>,
    ) -> Outcome {
        let Some(record) = self.datasets.get_mut(name).filter(|d| d.generation == generation) else {
            return Outcome::Stale;
        };
        match record.placement.get_mut(partition as usize) {
            Some(placed) => {
                *placed = holders;
                Outcome::Done
            }
            None => Outcome::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use ringleader_core::io::store::DatasetFormat;

    use super::*;
    use crate::state::Command;

    fn place(name: &str, generation: &str, expected: Option<&str>) -> Command {
        Command::PlaceDataset(PendingDataset {
            name: name.into(),
            generation: generation.into(),
            expected: expected.map(str::to_string),
            placed_ms: 0,
        })
    }

    fn commit(name: &str, generation: &str) -> Command {
        Command::CommitDataset(DatasetRecord {
            name: name.into(),
            generation: generation.into(),
            format: DatasetFormat::Text,
            replicas: 1,
            placement: vec![vec![WorkerId::from("worker-1")]],
            rows: vec![1],
            bytes: vec![1],
        })
    }

    fn conflict(outcome: Outcome) -> String {
        match outcome {
            Outcome::Conflict(why) => why,
            other => panic!("not a conflict: {other:?}"),
        }
    }

    #[test]
    fn of_two_writes_placed_against_the_same_generation_one_commits_and_the_other_is_told_which_won() {
        let mut state = ClusterState::default();
        // Two puts without --overwrite, placed while the name is free.
        assert_eq!(state.apply(place("race", "g1", None)), Outcome::Done);
        assert_eq!(state.apply(place("race", "g2", None)), Outcome::Done);
        assert_eq!(state.apply(commit("race", "g2")), Outcome::Done);
        let why = conflict(state.apply(commit("race", "g1")));
        assert!(why.contains("race") && why.contains("generation g2 won"), "{why}");
        assert_eq!(state.generation_of("race"), Some("g2"));
        assert!(state.pending.is_empty());
        // A write placed now without --overwrite is refused at once.
        assert!(conflict(state.apply(place("race", "g3", None))).contains("g2 won"));
    }

    #[test]
    fn an_overwrite_commits_only_over_the_generation_it_saw_and_a_removal_only_the_one_it_names() {
        let mut state = ClusterState::default();
        state.apply(place("d", "g1", None));
        state.apply(commit("d", "g1"));
        // Two overwrites of g1 at once: the second to commit loses.
        state.apply(place("d", "g2", Some("g1")));
        state.apply(place("d", "g3", Some("g1")));
        assert_eq!(state.apply(commit("d", "g3")), Outcome::Done);
        assert!(conflict(state.apply(commit("d", "g2"))).contains("generation g3 won"));
        // An rm of g1 (stale) removes nothing; of g3 it removes the dataset.
        assert!(
            conflict(state.apply(Command::RemoveDataset {
                name: "d".into(),
                generation: "g1".into(),
                request: String::new(),
            }))
            .contains("g3 is current")
        );
        assert_eq!(state.generation_of("d"), Some("g3"));
        // An overwrite placed before an rm loses to it.
        state.apply(place("d", "g4", Some("g3")));
        assert_eq!(
            state.apply(Command::RemoveDataset {
                name: "d".into(),
                generation: "g3".into(),
                request: String::new(),
            }),
            Outcome::Done
        );
        assert!(conflict(state.apply(commit("d", "g4"))).contains("was removed meanwhile"));
        assert_eq!(state.generation_of("d"), None);
    }

    #[test]
    fn a_retried_removal_or_commit_is_done_once() {
        let mut state = ClusterState::default();
        state.apply(place("d", "g1", None));
        assert_eq!(state.apply(commit("d", "g1")), Outcome::Done);
        // The commit's reply was lost and the client asked again: done, nothing changes.
        assert_eq!(state.apply(commit("d", "g1")), Outcome::Done);
        assert_eq!(state.generation_of("d"), Some("g1"));
        let remove = |generation: &str| Command::RemoveDataset {
            name: "d".into(),
            generation: generation.into(),
            request: "rm-1".into(),
        };
        assert_eq!(state.apply(remove("g1")), Outcome::Done);
        assert!(state.removed_by("rm-1") && !state.removed_by("") && !state.removed_by("rm-2"));
        // A new write of the name, then the removal's retry: done, and the new write stays.
        state.apply(place("d", "g2", None));
        state.apply(commit("d", "g2"));
        assert_eq!(state.apply(remove("g2")), Outcome::Done);
        assert_eq!(state.generation_of("d"), Some("g2"));
    }

    #[test]
    fn a_commit_without_a_placement_and_a_repair_of_a_replaced_generation_change_nothing() {
        let mut state = ClusterState::default();
        assert!(conflict(state.apply(commit("d", "g1"))).contains("no longer placed"));
        state.apply(place("d", "g1", None));
        assert_eq!(
            state.apply(Command::AbortDataset {
                name: "d".into(),
                generation: "g1".into(),
            }),
            Outcome::Done
        );
        assert!(conflict(state.apply(commit("d", "g1"))).contains("no longer placed"));
        state.apply(place("d", "g2", None));
        state.apply(commit("d", "g2"));
        let repair = |generation: &str| Command::RepairDataset {
            name: "d".into(),
            generation: generation.into(),
            partition: 0,
            holders: vec![WorkerId::from("worker-1"), WorkerId::from("worker-2")],
        };
        assert_eq!(state.apply(repair("g1")), Outcome::Stale);
        assert_eq!(state.datasets["d"].placement[0].len(), 1);
        assert_eq!(state.apply(repair("g2")), Outcome::Done);
        assert_eq!(state.datasets["d"].placement[0].len(), 2);
    }
}
