//! Between processes: what travels and how it is reached.
//! - [`flight`]: the one Flight `do_get` every reader uses; [`ticket`]: what it asks for.
//! - [`driver_group`]: reaching the leader of a driver group; [`serving`]: what every node
//!   does around serving.
//! - [`executor_env`]: what a worker tells the executor it starts.
//! - [`binary`]: job binaries by content hash; [`machine`]: which processes share a
//!   filesystem; [`ring`]: the consistent-hash ring.

pub mod binary;
pub mod driver_group;
pub mod executor_env;
pub mod flight;
pub mod machine;
pub mod ring;
pub mod serving;
pub mod ticket;
