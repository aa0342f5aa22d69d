//! Cuts a node DAG into stages at shuffle boundaries: narrow steps are pipelined into the
//! tasks of one stage; each shuffle adds a map stage per side. A sort first runs a small
//! sampling job to choose its range bounds (TeraSort's method).

use std::collections::HashMap;
use std::sync::Arc;

use ringleader_core::Result;
use ringleader_core::plan::{JobPlan, ShuffleRead, StageOutput, StagePlan, TaskInput, TaskPlan, TaskValue};

use crate::context::Context;
use crate::node::Node;

/// Windows read per split when sampling for sort bounds.
const SAMPLE_WINDOWS: u32 = 10;
/// Keys kept per sampling task.
const SAMPLE_KEYS_PER_TASK: u64 = 10_000;

/// Builds the plan of one action over `root`.
pub(crate) fn plan(ctx: &Context, root: &Arc<Node>, output: StageOutput) -> Result<JobPlan> {
    plan_with(ctx, root, output, None)
}

fn plan_with(ctx: &Context, root: &Arc<Node>, output: StageOutput, sample: Option<u32>) -> Result<JobPlan> {
    let mut planner = Planner {
        ctx,
        stages: Vec::new(),
        shuffle_stage: HashMap::new(),
    };
    let tasks = planner.tasks(root, sample)?;
    planner.push_stage(tasks, output);
    Ok(JobPlan {
        stages: planner.stages,
        store: None,
    })
}

struct Planner<'a> {
    ctx: &'a Context,
    stages: Vec<StagePlan>,
    /// Shuffle id -> the stage writing it.
    shuffle_stage: HashMap<u32, u32>,
}

impl Planner<'_> {
    fn push_stage(&mut self, tasks: Vec<TaskPlan>, output: StageOutput) -> u32 {
        let id = self.stages.len() as u32;
        let mut parents: Vec<u32> = tasks
            .iter()
            .filter_map(|t| match &t.input {
                TaskInput::Shuffle(read) => Some(read.shuffles.clone()),
                TaskInput::Source { .. } => None,
            })
            .flatten()
            .filter_map(|s| self.shuffle_stage.get(&s).copied())
            .collect();
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
        });
        id
    }

    fn next_shuffle(&self) -> u32 {
        self.shuffle_stage.len() as u32
    }

    /// The tasks computing `node`'s partitions; `sample` limits source reads (only through
    /// narrow steps, never across a shuffle, so upstream aggregates stay exact).
    fn tasks(&mut self, node: &Arc<Node>, sample: Option<u32>) -> Result<Vec<TaskPlan>> {
        match node.as_ref() {
            Node::Invalid { message } => Err(ringleader_core::Error::Plan(message.clone())),
            Node::Source { splits } => Ok(splits
                .iter()
                .map(|split| TaskPlan {
                    input: TaskInput::Source {
                        split: split.clone(),
                        sample_windows: sample,
                    },
                    steps: Vec::new(),
                })
                .collect()),
            Node::Narrow { parent, step } => {
                let mut tasks = self.tasks(parent, sample)?;
                for t in &mut tasks {
                    t.steps.push(step.clone());
                }
                Ok(tasks)
            }
            Node::Union { parents } => {
                let mut tasks = Vec::new();
                for p in parents {
                    tasks.extend(self.tasks(p, sample)?);
                }
                Ok(tasks)
            }
            Node::Shuffle {
                sides,
                reduce,
                partitions,
            } => {
                let mut shuffles = Vec::new();
                for (parent, sink) in sides {
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
                    );
                    shuffles.push(shuffle);
                }
                Ok(reduce_tasks(*reduce, Vec::new(), shuffles, *partitions))
            }
            Node::Sort {
                parent,
                sample: sample_fn,
                bounds,
                sink,
                reduce,
                partitions,
            } => {
                let sampling = plan_with(
                    self.ctx,
                    parent,
                    StageOutput::Action {
                        f: *sample_fn,
                        state: postcard::to_stdvec(&SAMPLE_KEYS_PER_TASK)?,
                    },
                    Some(SAMPLE_WINDOWS),
                )?;
                let samples: Vec<Vec<u8>> = self
                    .ctx
                    .execute(&sampling)?
                    .into_iter()
                    .filter_map(|v| match v {
                        TaskValue::Bytes(b) => Some(b),
                        _ => None,
                    })
                    .collect();
                let state = bounds(&samples, *partitions)?;
                let map_tasks = self.tasks(parent, None)?;
                let shuffle = self.next_shuffle();
                self.push_stage(
                    map_tasks,
                    StageOutput::Shuffle {
                        shuffle,
                        sink: *sink,
                        state,
                        partitions: *partitions,
                    },
                );
                Ok(reduce_tasks(*reduce, Vec::new(), vec![shuffle], *partitions))
            }
        }
    }
}

fn reduce_tasks(
    reduce: ringleader_core::shipped::Shipped<ringleader_core::plan::ReduceFn>,
    state: Vec<u8>,
    shuffles: Vec<u32>,
    partitions: u32,
) -> Vec<TaskPlan> {
    (0..partitions)
        .map(|partition| TaskPlan {
            input: TaskInput::Shuffle(ShuffleRead {
                reduce,
                state: state.clone(),
                shuffles: shuffles.clone(),
                partition,
            }),
            steps: Vec::new(),
        })
        .collect()
}
