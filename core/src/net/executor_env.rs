//! What a worker tells an executor it starts, through the executor's environment: the one
//! contract between the worker (which sets every variable here, `ringleader-worker`'s
//! `executors`) and the job library's executor mode (which reads them). Besides these the
//! executor gets the job's shipped variables, a job credential in place of the cluster
//! token ([`crate::security::auth`]), and `TMPDIR` inside its sandbox.

/// Makes a job binary an executor; its value is the address of the worker it serves.
pub const EXECUTOR: &str = "RINGLEADER_EXECUTOR";

/// The job whose tasks the executor runs (it serves no other).
pub const JOB: &str = "RINGLEADER_EXECUTOR_JOB";

/// The id of the worker that started it (named in what its tasks record).
pub const WORKER_ID: &str = "RINGLEADER_WORKER_ID";

/// The worker's shuffle directory: map outputs are written under it, held results too.
pub const SHUFFLE_DIR: &str = "RINGLEADER_SHUFFLE_DIR";

/// The worker's datasets directory: stored partitions are read and written under it.
pub const DATASET_DIR: &str = "RINGLEADER_DATASET_DIR";

/// The most its worker lets the executor budget for; it takes the smaller of this and its
/// job's `RINGLEADER_MEMORY`.
pub const WORKER_MEMORY: &str = "RINGLEADER_WORKER_MEMORY";

/// The hash of the binary the worker started, which it checked against the file before
/// (hashing it again when the file changed), so the executor need not read its own 20-50 MB
/// image again on every start.
pub const VERIFIED_HASH: &str = "RINGLEADER_EXECUTOR_BINARY_HASH";

/// The executor's store grant ([`crate::security::auth::store_grant_for`]), set when its job writes a
/// stored dataset (empty otherwise).
pub const STORE_GRANT: &str = "RINGLEADER_STORE_GRANT";
