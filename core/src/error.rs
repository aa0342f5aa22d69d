//! The core's error type: every failure a job can meet, each naming the file, line or
//! partition at fault so a user knows what to fix.

use std::path::PathBuf;

/// Everything that can go wrong while planning or running a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named file failed. The message includes the operating
    /// system's error, which is therefore not also its `source()` (said once in a chain).
    #[error("{path}: {error}")]
    Io {
        /// The file or directory being read or written.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// No worker holding some stored data could be reached. Retryable, and it counts
    /// toward the task's attempts, so a dataset that stays unreachable fails the job.
    #[error("{what}: {message}")]
    Unreachable {
        /// What was being read or written.
        what: String,
        /// What each worker tried said.
        message: String,
    },
    /// An input path does not exist.
    #[error("input {0} does not exist")]
    MissingInput(PathBuf),
    /// An input path exists but holds no data files.
    #[error("input {0} holds no data files")]
    EmptyInput(PathBuf),
    /// A record file's size is not a whole number of records.
    #[error(
        "{path}: size {size} is not a multiple of {record_len} bytes; the record at byte offset {offset} is incomplete"
    )]
    PartialRecord {
        /// The record file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The record length the format requires.
        record_len: u64,
        /// Byte offset of the incomplete trailing record.
        offset: u64,
    },
    /// A text file holds bytes that are not UTF-8.
    #[error(
        "{path}:{line}: not valid UTF-8 (byte offset {offset}); read it with TextOptions {{ lossy: true, .. }} to replace invalid bytes"
    )]
    InvalidUtf8 {
        /// The text file.
        path: PathBuf,
        /// 1-based line number of the offending line.
        line: u64,
        /// Byte offset of the first invalid byte.
        offset: u64,
    },
    /// A file could not be decoded in its declared format (CSV, Parquet, Arrow IPC).
    #[error("{path}: {message}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// The job binary was built without the cargo feature a format needs.
    #[error(
        "{what} needs ringleader's `{feature}` feature, which this binary was built without: build it with `--features {feature}` (or `features = [\"{feature}\"]` on its ringleader dependency)"
    )]
    FeatureOff {
        /// What was asked for (reading or writing a format).
        what: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// Rows could not be converted to or from Arrow.
    #[error("arrow conversion: {0}")]
    Codec(String),
    /// An Arrow kernel or IPC operation failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The output directory exists and overwriting was not asked for.
    #[error("output {0} already exists; pass --overwrite (Output::overwrite(true)) to replace it")]
    OutputExists(PathBuf),
    /// A user closure panicked while running a task.
    #[error("task failed in stage {stage}, partition {partition}: a closure panicked: {message}")]
    TaskPanicked {
        /// The stage of the failed task.
        stage: crate::ids::StageId,
        /// The partition the task was computing.
        partition: crate::ids::TaskId,
        /// The panic message.
        message: String,
    },
    /// A task failed with an error (not a panic). Its message includes the cause, which is
    /// therefore not also its `source()`: a chain printed whole (`{:#}`) says it once.
    #[error("task failed in stage {stage}, partition {partition}: {cause}")]
    TaskFailed {
        /// The stage of the failed task.
        stage: crate::ids::StageId,
        /// The partition the task was computing.
        partition: crate::ids::TaskId,
        /// What went wrong.
        cause: Box<Error>,
    },
    /// An integer sum left the range of its type.
    #[error("integer overflow: the sum does not fit in {0}")]
    Overflow(&'static str),
    /// Serialized closure state or a plan could not be (de)serialized.
    #[error("serialization: {0}")]
    Serde(#[from] postcard::Error),
    /// The job plan is inconsistent (a bug, or a plan from another binary).
    #[error("invalid plan: {0}")]
    Plan(String),
    /// Shuffle output could not be fetched from the worker holding it.
    #[error("fetching shuffle output from {location}: {message}")]
    FetchFailed {
        /// The worker address (or local path) the block was to come from.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// Talking to the cluster failed (unreachable master, rejected job, failed job).
    #[error("{0}")]
    Cluster(String),
    /// The job succeeded, but the driver no longer keeps its results (the client came back
    /// after many later jobs had finished).
    #[error(
        "the job succeeded, but the driver no longer keeps its results (it keeps only the most recent jobs'): run it again to get them"
    )]
    ResultsGone,
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The attempt was stopped: another attempt of its task finished first.
    #[error("stopped: another attempt of this task finished first")]
    Stopped,
    /// Another attempt of the task owns its output: this one may not place it (the driver
    /// granted the commit to another live attempt, or a holder has a newer attempt's copy).
    #[error("superseded: {0}")]
    Superseded(String),
}

/// The core's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is a failure of the machine's I/O (a full or broken disk, a vanished
    /// file), also when a library reported it (Arrow's IPC writer): another worker may
    /// succeed where this one failed.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Arrow(arrow_schema::ArrowError::IoError(..))
        )
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    /// Wraps a decoding failure of a named file.
    pub fn format(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::Format {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

impl From<crate::plan::shipped::NotATrampoline> for Error {
    fn from(e: crate::plan::shipped::NotATrampoline) -> Self {
        Error::Plan(e.to_string())
    }
}

impl From<serde_arrow::Error> for Error {
    fn from(e: serde_arrow::Error) -> Self {
        Error::Codec(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of a chain (an error and its sources), as `{:#}` prints it.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            text += &format!(": {cause}");
            next = cause.source();
        }
        text
    }

    #[test]
    fn a_chain_printed_whole_says_each_cause_once() {
        let io = Error::io("/data/x.csv", std::io::Error::other("disk on fire"));
        let failed = Error::TaskFailed {
            stage: crate::ids::StageId(1),
            partition: crate::ids::TaskId(2),
            cause: Box::new(io),
        };
        let text = chain(&failed);
        assert_eq!(text.matches("disk on fire").count(), 1, "{text}");
        assert_eq!(text.matches("/data/x.csv").count(), 1, "{text}");
        assert!(text.starts_with("task failed in stage 1, partition 2"), "{text}");
    }
}
