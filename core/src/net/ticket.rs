//! The tickets of a worker's Flight `do_get`: what each one names, written and read here
//! only. A ticket is `KIND/` and the named thing's coordinates:
//!
//! | kind | names | read by |
//! |---|---|---|
//! | `block/JOB/SHUFFLE/MAP/ATTEMPT/PARTITION` | one reduce partition of a map task's output ([`BlockId`]) | reducers on other workers |
//! | `result/JOB/STAGE/TASK/ATTEMPT` | a final task's result held on its worker ([`ResultId`]) | the job's client |
//! | `dataset/NAME/GENERATION/PARTITION` | a stored dataset's partition ([`PartitionId`]) | jobs, `get`, the repair loop |
//!
//! Parsing refuses anything that could name a path outside the directory it addresses.

use std::fmt;

use crate::error::{Error, Result};
use crate::ids::{Attempt, JobId, ShuffleId, StageId, TaskId, valid_job_id};

// The coordinates each kind of ticket carries (their other methods live where they are used).

/// One block's coordinates, as a Flight ticket carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockId {
    /// The job.
    pub job: JobId,
    /// The shuffle within the job.
    pub shuffle: ShuffleId,
    /// The map task that wrote it.
    pub map: TaskId,
    /// The map task's attempt whose output is read.
    pub attempt: Attempt,
    /// The reduce partition.
    pub partition: TaskId,
}

impl BlockId {
    /// Reads a block's coordinates from a ticket's parts (see [`crate::net::ticket`]); refuses
    /// anything that could name a path outside the shuffle root.
    pub fn from_parts(parts: &[&str]) -> Result<BlockId> {
        let bad = || Error::Plan(format!("malformed shuffle block {:?}", parts.join("/")));
        let [job, shuffle, map, attempt, partition] = parts[..] else {
            return Err(bad());
        };
        if !crate::ids::valid_job_id(job) {
            return Err(bad());
        }
        Ok(BlockId {
            job: JobId::from(job),
            shuffle: shuffle.parse().map_err(|_| bad())?,
            map: TaskId(map.parse().map_err(|_| bad())?),
            attempt: Attempt(attempt.parse().map_err(|_| bad())?),
            partition: partition.parse().map_err(|_| bad())?,
        })
    }
}

/// One task attempt's held result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultId {
    /// The job.
    pub job: JobId,
    /// The stage.
    pub stage: StageId,
    /// The task.
    pub task: TaskId,
    /// The attempt that made it.
    pub attempt: Attempt,
}

impl ResultId {
    /// Reads a result's coordinates from a ticket's parts (see [`crate::net::ticket`]); refuses
    /// anything that could name a path outside the results directory.
    pub fn from_parts(parts: &[&str]) -> Result<ResultId> {
        let bad = || Error::Plan(format!("malformed result {:?}", parts.join("/")));
        let [job, stage, task, attempt] = parts[..] else {
            return Err(bad());
        };
        if !valid_job_id(job) {
            return Err(bad());
        }
        let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
        Ok(ResultId {
            job: JobId::from(job),
            stage: StageId(number(stage)?),
            task: TaskId(number(task)?),
            attempt: Attempt(number(attempt)?),
        })
    }
}

/// One stored partition's coordinates, as Flight tickets and descriptors carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionId {
    /// The dataset.
    pub dataset: String,
    /// The generation being read or written.
    pub generation: String,
    /// The partition.
    pub partition: u32,
}

impl PartitionId {
    /// The Flight descriptor path (`do_put`) naming this partition.
    pub fn descriptor(&self) -> Vec<String> {
        vec![
            "dataset".into(),
            self.dataset.clone(),
            self.generation.clone(),
            self.partition.to_string(),
        ]
    }

    /// Reads a partition's coordinates from the parts after `dataset` of a ticket (see
    /// [`crate::net::ticket`]) or descriptor; refuses anything that could name a path outside the
    /// datasets directory.
    pub fn from_parts(parts: &[&str]) -> Result<PartitionId> {
        let bad = || Error::Plan(format!("malformed dataset partition {:?}", parts.join("/")));
        let [dataset, generation, partition] = parts else {
            return Err(bad());
        };
        if !crate::ids::valid_dataset_name(dataset) || !crate::ids::valid_dataset_name(generation) {
            return Err(bad());
        }
        Ok(PartitionId {
            dataset: dataset.to_string(),
            generation: generation.to_string(),
            partition: partition.parse().map_err(|_| bad())?,
        })
    }
}

/// What a `do_get` asks a worker for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlightTicket {
    /// A shuffle block.
    Block(BlockId),
    /// A held task result.
    Result(ResultId),
    /// A stored dataset's partition.
    Partition(PartitionId),
}

impl FlightTicket {
    /// The ticket's bytes, as `do_get` sends them.
    pub fn encode(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Reads a ticket a `do_get` received.
    pub fn parse(bytes: &[u8]) -> Result<FlightTicket> {
        let bad = |why: &str| {
            Error::Plan(format!(
                "malformed Flight ticket {:?}: {why}",
                String::from_utf8_lossy(bytes)
            ))
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let (kind, rest) = text.split_once('/').ok_or_else(|| bad("no kind"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match kind {
            "block" => BlockId::from_parts(&parts).map(FlightTicket::Block),
            "result" => ResultId::from_parts(&parts).map(FlightTicket::Result),
            "dataset" => PartitionId::from_parts(&parts).map(FlightTicket::Partition),
            _ => Err(bad("the kind is none of block, result, dataset")),
        }
    }
}

impl fmt::Display for FlightTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlightTicket::Block(b) => write!(
                f,
                "block/{}/{}/{}/{}/{}",
                b.job, b.shuffle, b.map, b.attempt, b.partition
            ),
            FlightTicket::Result(r) => write!(f, "result/{}/{}/{}/{}", r.job, r.stage, r.task, r.attempt),
            FlightTicket::Partition(p) => write!(f, "dataset/{}/{}/{}", p.dataset, p.generation, p.partition),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::{Attempt, ShuffleId, StageId, TaskId};

    fn tickets() -> [FlightTicket; 3] {
        [
            FlightTicket::Block(BlockId {
                job: "job-000001".into(),
                shuffle: ShuffleId(2),
                map: TaskId(3),
                attempt: Attempt(4),
                partition: TaskId(5),
            }),
            FlightTicket::Result(ResultId {
                job: "job-000001".into(),
                stage: StageId(2),
                task: TaskId(7),
                attempt: Attempt(1),
            }),
            FlightTicket::Partition(PartitionId {
                dataset: "words".into(),
                generation: "g1".into(),
                partition: 3,
            }),
        ]
    }

    #[test]
    fn each_kind_is_written_as_documented_and_read_back() {
        let written: Vec<String> = tickets().iter().map(ToString::to_string).collect();
        assert_eq!(
            written,
            [
                "block/job-000001/2/3/4/5",
                "result/job-000001/2/7/1",
                "dataset/words/g1/3"
            ]
        );
        for ticket in tickets() {
            assert_eq!(FlightTicket::parse(&ticket.encode()).expect("parse"), ticket);
        }
    }

    #[test]
    fn tickets_that_could_name_other_paths_or_are_incomplete_are_refused() {
        for bad in [
            "",
            "block",
            "job-000001/0/0/1/5",
            "block/job-000001/0/0/5",
            "block/../x/0/0/1/5",
            "block/job-000001/0/0/1/5/6",
            "result/../x/1/2/3",
            "result/job/1/2",
            "result/job-000001/1/2/x",
            "result/a b/1/2/3",
            "dataset/../g1/3",
            "dataset/w/../g/3",
            "dataset/w/g/x",
            "dataset/w/g",
            "stage/job-000001/1",
        ] {
            assert!(FlightTicket::parse(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn every_ticket_reads_back_as_written(
            shuffle in 0u32..1000, map in 0u32..100_000, attempt in 0u32..64, partition in 0u32..100_000,
            name in "[A-Za-z0-9_-]{1,64}",
        ) {
            let ticket = FlightTicket::Block(BlockId {
                job: "job-123456".into(),
                shuffle: ShuffleId(shuffle),
                map: TaskId(map),
                attempt: Attempt(attempt),
                partition: TaskId(partition),
            });
            prop_assert_eq!(FlightTicket::parse(&ticket.encode()).expect("block"), ticket);
            let ticket = FlightTicket::Partition(PartitionId { dataset: name.clone(), generation: name, partition });
            prop_assert_eq!(FlightTicket::parse(&ticket.encode()).expect("partition"), ticket);
        }
    }
}
