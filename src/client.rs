//! Reaching a cluster's driver group: its addresses, and calls that find and follow its
//! leader with bounded patience, their failures as cluster errors that say what was being
//! done. The job's own cluster client and the `ringleader` command both call through here.

use std::time::Duration;

use ringleader_core::net::driver_group::DriverGroup;
use ringleader_core::proto::driver_client::DriverClient;
use ringleader_core::{Error, Result};

/// How long a call waits for the driver group to have a leader (a failover takes about a
/// second on a laptop; this leaves room for a slow election).
const PATIENCE: Duration = Duration::from_secs(20);

/// The driver group at `masters`, as a cluster error when the addresses are unusable.
pub fn driver_group(masters: Vec<String>) -> Result<DriverGroup> {
    DriverGroup::new(masters).map_err(|e| Error::Cluster(e.message().to_string()))
}

/// Calls the leader of `group` (following redirects); errors become cluster errors that
/// say what was being done.
pub async fn call<T, F, Fut>(group: &DriverGroup, what: &str, f: F) -> Result<T>
where
    F: FnMut(DriverClient<ringleader_core::security::auth::AuthChannel>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    call_within(group, what, PATIENCE, f).await
}

/// [`call`], waiting up to `patience` for a leader that sees the call through.
pub(crate) async fn call_within<T, F, Fut>(group: &DriverGroup, what: &str, patience: Duration, f: F) -> Result<T>
where
    F: FnMut(DriverClient<ringleader_core::security::auth::AuthChannel>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    named(group.call(patience, f).await, what)
}

/// [`call_within`] for a call that may take as long as its whole `patience` (an upload).
pub(crate) async fn call_long<T, F, Fut>(group: &DriverGroup, what: &str, patience: Duration, f: F) -> Result<T>
where
    F: FnMut(DriverClient<ringleader_core::security::auth::AuthChannel>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    named(group.call_each_within(patience, patience, f).await, what)
}

/// A group call's error, saying what was being done.
fn named<T>(result: std::result::Result<T, tonic::Status>, what: &str) -> Result<T> {
    result.map_err(|e| {
        if e.message().starts_with("cannot reach") {
            Error::Cluster(e.message().to_string())
        } else {
            Error::Cluster(format!("{what}: {}", e.message()))
        }
    })
}

/// Removes stored dataset `name`, once: the removal carries an id of its own, so a retry
/// after a lost reply (a leader change) answers as done instead of "no dataset", and never
/// removes a dataset written after it.
pub async fn remove_dataset(group: &DriverGroup, name: &str) -> Result<()> {
    let request = ringleader_core::proto::RemoveDatasetRequest {
        name: name.to_string(),
        request: ringleader_core::net::machine::unique_id(),
    };
    call(group, "removing the dataset", |mut d| {
        let request = request.clone();
        async move { d.remove_dataset(request).await }
    })
    .await?;
    Ok(())
}

/// Parses `host:port[,host:port…]`.
pub fn parse_masters(value: &str) -> Result<Vec<String>> {
    let masters: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if masters.is_empty() {
        return Err(Error::Config(format!(
            "RINGLEADER_MASTER={value:?} names no address (expected host:port[,host:port…])"
        )));
    }
    Ok(masters)
}
