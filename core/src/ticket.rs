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

use crate::cluster_shuffle::BlockId;
use crate::error::{Error, Result};
use crate::results::ResultId;
use crate::store::PartitionId;

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
