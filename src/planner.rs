//! Cuts a node DAG into stages at shuffle boundaries: narrow steps are pipelined into the
//! tasks of one stage; each shuffle adds a map stage per side, planned once however often
//! the DAG reaches it (`a.join(&a)`, a sort's sample and its map side). A sort samples its
//! keys in a stage of the same job (TeraSort's method), whose values its map stage takes
//! to choose the range bounds: one job per action.

use std::collections::HashMap;
use std::sync::Arc;

use ringleader_core::Result;
use ringleader_core::ids::{ShuffleId, StageId, TaskId};
use ringleader_core::plan::{JobPlan, ShuffleRead, StageOutput, StagePlan, TaskInput, TaskPlan};

use ringleader_core::io::source::Split;
use ringleader_core::ops::narrow::with_index;

use crate::cache::registry::CachedSplits;
use crate::lineage::{Lineage, ShuffleSide};

/// Windows read per split when sampling for sort bounds.
const SAMPLE_WINDOWS: u32 = 10;
/// Keys sampled in all (TeraSort takes 100,000), spread over the sampling tasks.
const SAMPLE_KEYS: u64 = 100_000;
/// Keys kept per sampling task at least.
const MIN_SAMPLE_KEYS_PER_TASK: u64 = 1_000;

/// Builds the plan of one action over `root`, reading the partitions `caches` holds for
/// the cached nodes it reaches.
pub(crate) fn plan(root: &Arc<Lineage>, output: StageOutput, caches: &CachedSplits) -> Result<JobPlan> {
    let mut planner = Planner {
        stages: Vec::new(),
        shuffle_stage: HashMap::new(),
        planned: HashMap::new(),
        caches,
    };
    let tasks = planner.tasks(root, None)?;
    planner.push_stage(tasks, output, None);
    Ok(JobPlan {
        stages: planner.stages,
        store: None,
    })
}

struct Planner<'a> {
    stages: Vec<StagePlan>,
    /// Shuffle id -> the stage writing it.
    shuffle_stage: HashMap<ShuffleId, StageId>,
    /// Shuffles already planned, by (parent node, sink, sink state, partitions): a node
    /// the DAG reaches twice is computed once.
    planned: HashMap<(usize, i64, Vec<u8>, u32), ShuffleId>,
    /// The computed partitions of the program's caches.
    caches: &'a CachedSplits,
}

impl Planner<'_> {
    /// Adds a stage; `state_from` names the stage whose values become its sink state.
    fn push_stage(&mut self, tasks: Vec<TaskPlan>, output: StageOutput, state_from: Option<StageId>) -> StageId {
        let id = StageId::from(self.stages.len());
        let mut parents: Vec<StageId> = tasks
            .iter()
            .filter_map(|t| match &t.input {
                TaskInput::Shuffle(read) => Some(read.shuffles.clone()),
                TaskInput::Source { .. } => None,
            })
            .flatten()
            .filter_map(|s| self.shuffle_stage.get(&s).copied())
            .collect();
        parents.extend(state_from);
        parents.sort_unstable();
        parents.dedup();
        if let StageOutput::Shuffle { shuffle, .. } = &output {
            self.shuffle_stage.insert(*shuffle, id);
        }
        self.stages.push(StagePlan {
            id,
            tasks,
            output,
            parents,
            state_from,
        });
        id
    }

    /// Drops the stages from number `mark` on, with the shuffles they wrote.
    fn forget_stages_from(&mut self, mark: usize) {
        self.stages.truncate(mark);
        self.shuffle_stage.retain(|_, stage| stage.index() < mark);
        let kept = &self.shuffle_stage;
        self.planned.retain(|_, shuffle| kept.contains_key(shuffle));
    }

    fn next_shuffle(&self) -> ShuffleId {
        ShuffleId::from(self.shuffle_stage.len())
    }

    /// The tasks computing `node`'s partitions; `sample` limits source reads (only through
    /// narrow steps, never across a shuffle, so upstream aggregates stay exact).
    fn tasks(&mut self, node: &Arc<Lineage>, sample: Option<u32>) -> Result<Vec<TaskPlan>> {
        match node.as_ref() {
            Lineage::Invalid { message } => Err(ringleader_core::Error::Plan(message.clone())),
            Lineage::Source { splits } => Ok(splits
                .iter()
                .map(|split| TaskPlan {
                    input: TaskInput::Source {
                        split: split.clone(),
                        sample_windows: sample,
                    },
                    steps: Vec::new(),
                })
                .collect()),
            Lineage::Narrow { parent, step, indexed } => {
                let mut tasks = self.tasks(parent, sample)?;
                for (index, t) in tasks.iter_mut().enumerate() {
                    let mut step = step.clone();
                    if *indexed {
                        step.state = with_index(index as u32, &step.state);
                    }
                    t.steps.push(step);
                }
                Ok(tasks)
            }
            Lineage::Cached { parent, spec } => {
                let read = |split: &Split| TaskPlan {
                    input: TaskInput::Source {
                        split: split.clone(),
                        sample_windows: sample,
                    },
                    steps: Vec::new(),
                };
                match self.caches.get(&spec.id) {
                    None => self.tasks(parent, sample),
                    Some(splits) if splits.iter().all(Option::is_some) => {
                        Ok(splits.iter().flatten().map(read).collect())
                    }
                    Some(splits) => {
                        // Partitions not held are computed again from lineage, alone.
                        let tasks = self.tasks(parent, sample)?;
                        if tasks.len() != splits.len() {
                            return Err(ringleader_core::Error::Plan(format!(
                                "cached dataset {} has {} partitions, its lineage {}",
                                spec.id,
                                splits.len(),
                                tasks.len()
                            )));
                        }
                        Ok(tasks
                            .into_iter()
                            .zip(splits)
                            .map(|(task, split)| split.as_ref().map_or(task, read))
                            .collect())
                    }
                }
            }
            Lineage::Described { parent, .. } => self.tasks(parent, sample),
            Lineage::Coalesce {
                parent,
                partitions,
                fallback,
            } => {
                let mark = self.stages.len();
                let tasks = self.tasks(parent, sample)?;
                match (coalesce(tasks, *partitions, sample), fallback) {
                    (Some(merged), _) => Ok(merged),
                    (None, Some(fallback)) => {
                        // The fallback plans `parent` again: the stages planned for it
                        // just now would run unread.
                        self.forget_stages_from(mark);
                        self.tasks(fallback, sample)
                    }
                    (None, None) => Err(ringleader_core::Error::Plan(
                        "coalesce merges source splits read through the same steps only".into(),
                    )),
                }
            }
            Lineage::Union { parents } => {
                let mut tasks = Vec::new();
                for p in parents {
                    tasks.extend(self.tasks(p, sample)?);
                }
                Ok(tasks)
            }
            Lineage::Shuffle {
                sides,
                reduce,
                partitions,
            } => {
                let mut shuffles = Vec::new();
                for ShuffleSide { parent, sink, state } in sides {
                    let key = (Arc::as_ptr(parent) as usize, sink.offset(), state.clone(), *partitions);
                    if let Some(&shuffle) = self.planned.get(&key) {
                        shuffles.push(shuffle);
                        continue;
                    }
                    let map_tasks = self.tasks(parent, None)?;
                    let shuffle = self.next_shuffle();
                    self.push_stage(
                        map_tasks,
                        StageOutput::Shuffle {
                            shuffle,
                            sink: *sink,
                            state: state.clone(),
                            partitions: *partitions,
                        },
                        None,
                    );
                    self.planned.insert(key, shuffle);
                    shuffles.push(shuffle);
                }
                Ok(reduce_tasks(*reduce, Vec::new(), shuffles, *partitions))
            }
            Lineage::Sort {
                parent,
                sample: sample_fn,
                sink,
                reduce,
                partitions,
            } => {
                // The sample: a few windows of each source split (through narrow steps
                // only; an upstream shuffle is planned once and read whole).
                let sample_tasks = self.tasks(parent, Some(SAMPLE_WINDOWS))?;
                let per_task = (SAMPLE_KEYS / sample_tasks.len().max(1) as u64).max(MIN_SAMPLE_KEYS_PER_TASK);
                let sampled = self.push_stage(
                    sample_tasks,
                    StageOutput::Action {
                        f: *sample_fn,
                        state: postcard::to_stdvec(&per_task)?,
                    },
                    None,
                );
                let map_tasks = self.tasks(parent, None)?;
                let shuffle = self.next_shuffle();
                self.push_stage(
                    map_tasks,
                    StageOutput::Shuffle {
                        shuffle,
                        sink: *sink,
                        state: Vec::new(),
                        partitions: *partitions,
                    },
                    Some(sampled),
                );
                Ok(reduce_tasks(*reduce, Vec::new(), vec![shuffle], *partitions))
            }
        }
    }
}

/// `tasks` merged into at most `partitions` tasks, consecutive ones together; `None` unless
/// every task reads a source split through the same steps (their splits are then read one
/// after the other).
fn coalesce(tasks: Vec<TaskPlan>, partitions: u32, sample: Option<u32>) -> Option<Vec<TaskPlan>> {
    let partitions = partitions.max(1) as usize;
    if tasks.len() <= partitions {
        return Some(tasks);
    }
    let total = tasks.len();
    let mut merged: Vec<TaskPlan> = Vec::with_capacity(partitions);
    let mut tasks = tasks.into_iter();
    for group in 0..partitions {
        let size = total * (group + 1) / partitions - total * group / partitions;
        let members: Vec<TaskPlan> = tasks.by_ref().take(size).collect();
        let steps = members.first().map(|t| t.steps.clone()).unwrap_or_default();
        let mut splits = Vec::with_capacity(members.len());
        for member in members {
            match member.input {
                TaskInput::Source { split, sample_windows } if member.steps == steps && sample_windows == sample => {
                    splits.push(split)
                }
                _ => return None,
            }
        }
        merged.push(TaskPlan {
            input: TaskInput::Source {
                split: Split::Concat { splits },
                sample_windows: sample,
            },
            steps,
        });
    }
    Some(merged)
}

fn reduce_tasks(
    reduce: ringleader_core::plan::shipped::Shipped<ringleader_core::plan::ReduceFn>,
    state: Vec<u8>,
    shuffles: Vec<ShuffleId>,
    partitions: u32,
) -> Vec<TaskPlan> {
    (0..partitions)
        .map(|partition| TaskPlan {
            input: TaskInput::Shuffle(ShuffleRead {
                reduce,
                state: state.clone(),
                shuffles: shuffles.clone(),
                partition: TaskId(partition),
            }),
            steps: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ringleader_core::ids::{ShuffleId, StageId};
    use ringleader_core::plan::{StageOutput, TaskInput};

    use crate::Context;

    fn map_stages(plan: &ringleader_core::plan::JobPlan) -> Vec<ShuffleId> {
        plan.stages
            .iter()
            .filter_map(|s| match s.output {
                StageOutput::Shuffle { shuffle, .. } => Some(shuffle),
                StageOutput::Action { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_sort_after_a_shuffle_is_one_plan_and_computes_the_shuffle_once() {
        let ctx = Context::embedded();
        let summed = ctx
            .parallelize(vec![(1u8, 2i64), (3, 4)], 2)
            .expect("data")
            .reduce_by_key(|a, b| a + b);
        let sorted = summed.sort_by_key(|(_, s)| *s);
        let plan = super::plan(
            &sorted.node,
            crate::outputs::collect_output::<(u8, i64)>(),
            &Default::default(),
        )
        .expect("plan");
        // The upstream map stage, the sample, the range map stage, the final sort.
        assert_eq!(map_stages(&plan), vec![ShuffleId(0), ShuffleId(1)], "{plan:#?}");
        let sample = plan
            .stages
            .iter()
            .position(|s| {
                s.state_from.is_none()
                    && matches!(s.output, StageOutput::Action { .. })
                    && s.id.index() + 1 != plan.stages.len()
            })
            .expect("a sampling stage");
        let range = plan
            .stages
            .iter()
            .find(|s| s.state_from.is_some())
            .expect("a stage taking the samples");
        assert_eq!(range.state_from, Some(StageId::from(sample)));
        assert!(range.parents.contains(&StageId::from(sample)));
        // Both the sample and the range stage read the one upstream shuffle.
        for stage in [&plan.stages[sample], range] {
            assert!(
                stage
                    .tasks
                    .iter()
                    .all(|t| matches!(&t.input, TaskInput::Shuffle(r) if r.shuffles == vec![ShuffleId(0)]))
            );
        }
    }

    #[test]
    fn a_self_join_plans_its_side_once() {
        // Small sides are broadcast; this one is shuffled.
        let ctx = Context::new(crate::Config {
            broadcast_join_bytes: 0,
            progress: false,
            ..crate::Config::default()
        })
        .expect("engine");
        let a = ctx.parallelize(vec![(1u8, 2i64)], 2).expect("data");
        let joined = a.join(&a);
        let plan = super::plan(
            &joined.node,
            crate::outputs::collect_output::<(u8, (i64, i64))>(),
            &Default::default(),
        )
        .expect("plan");
        assert_eq!(map_stages(&plan), vec![ShuffleId(0)], "{plan:#?}");
        assert_eq!(plan.shuffle_reads().values().copied().max(), Some(2));
    }
}
