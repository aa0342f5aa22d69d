//! Reaching the leader of a driver group. A driver that is not the leader refuses a call
//! with [`not_leader`] (status `Unavailable`, the leader's address in the `ringleader-leader`
//! metadata when it knows one); [`DriverGroup::call`] follows that hint, or tries the next
//! address when a driver cannot be reached, until a deadline. Clients and workers use it,
//! so a leader change needs no action from the user.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::proto::driver_client::DriverClient;
use crate::security::auth::{AuthChannel, authorized};
use crate::sync::lock;

/// Metadata key naming the leader's address in a follower's refusal.
pub const LEADER_KEY: &str = "ringleader-leader";

/// The refusal of a driver that is not the leader; `leader` is the leader's address if known.
pub fn not_leader(leader: Option<&str>) -> Status {
    let mut status = Status::unavailable(match leader {
        Some(address) => format!("this driver is not the leader; the leader is at {address}"),
        None => "this driver is not the leader, and no leader is elected yet".to_string(),
    });
    if let Some(address) = leader
        && let Ok(value) = address.parse()
    {
        status.metadata_mut().insert(LEADER_KEY, value);
    }
    status
}

/// The leader's address a refusal names, if any.
pub fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether another driver (or the same one, later) may answer: the driver was unreachable,
/// went away mid-call, or is not the leader.
pub fn is_failover(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Cancelled)
        || (status.code() == Code::Unknown && status.message().contains("transport"))
        || (status.code() == Code::Internal && status.message().contains("h2 protocol error"))
}

/// A lazily connecting channel to a driver: dead connections are noticed by HTTP/2 pings
/// within about three seconds, even when the driver is stopped rather than gone.
pub fn driver_channel(address: &str) -> Result<Channel, Status> {
    Ok(crate::security::tls::endpoint(address)
        .map_err(|e| Status::invalid_argument(e.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// The drivers of one group, and which of them is believed to lead.
pub struct DriverGroup {
    addresses: Vec<String>,
    current: Mutex<(String, DriverClient<AuthChannel>)>,
}

impl DriverGroup {
    /// A group known by these addresses (at least one).
    pub fn new(addresses: Vec<String>) -> Result<DriverGroup, Status> {
        let first = addresses
            .first()
            .cloned()
            .ok_or_else(|| Status::invalid_argument("no driver address given"))?;
        let client = DriverClient::new(authorized(driver_channel(&first)?));
        Ok(DriverGroup {
            addresses,
            current: Mutex::new((first, client)),
        })
    }

    /// The addresses this group was given.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// The driver currently believed to lead, and a client of it.
    pub fn current(&self) -> (String, DriverClient<AuthChannel>) {
        lock(&self.current).clone()
    }

    /// After `status` from the driver at `tried`: switch to the leader it names, or to the
    /// next address (unless another caller already switched).
    pub fn fail_over(&self, tried: &str, status: &Status) {
        let mut current = lock(&self.current);
        if current.0 != tried {
            return;
        }
        let next = leader_hint(status).filter(|hint| hint != tried).unwrap_or_else(|| {
            let at = self.addresses.iter().position(|a| a == tried).map_or(0, |i| i + 1);
            self.addresses[at % self.addresses.len()].clone()
        });
        if let Ok(channel) = driver_channel(&next) {
            *current = (next, DriverClient::new(authorized(channel)));
        }
    }

    /// Calls `f` on the leader, following redirects and trying other drivers until `patience`
    /// runs out; errors that no other driver would answer differently return at once. When
    /// every address was tried and none answered for three seconds, the error says so (the
    /// cluster is down or the addresses are wrong) instead of waiting out the patience.
    pub async fn call<T, F, Fut>(&self, patience: Duration, f: F) -> Result<T, Status>
    where
        F: FnMut(DriverClient<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let attempt_limit = patience.clamp(Duration::from_secs(1), Duration::from_secs(10));
        self.call_each_within(patience, attempt_limit, f).await
    }

    /// [`DriverGroup::call`], giving each attempt up to `attempt_limit` (a long upload on a
    /// slow link needs more than the 10 s a short call gets; a dead peer still ends it
    /// sooner, through the connection's keep-alive).
    pub async fn call_each_within<T, F, Fut>(
        &self,
        patience: Duration,
        attempt_limit: Duration,
        mut f: F,
    ) -> Result<T, Status>
    where
        F: FnMut(DriverClient<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut answered = false;
        // Why each address that did not answer failed, by address.
        let mut unreachable: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        loop {
            let (address, client) = self.current();
            let status = match tokio::time::timeout(attempt_limit, f(client)).await {
                Ok(Ok(reply)) => return Ok(reply.into_inner()),
                Ok(Err(status)) if !is_failover(&status) => return Err(status),
                Ok(Err(status)) => status,
                Err(_) => Status::unavailable(format!("no answer within {:.0} s", attempt_limit.as_secs_f64())),
            };
            self.fail_over(&address, &status);
            if is_refusal(&status) {
                answered = true;
            } else {
                unreachable
                    .entry(address.clone())
                    .or_insert_with(|| crate::security::tls_diagnosis::status_chain(&status));
            }
            // Every address tried and none answered, for three seconds: nothing is there.
            let all_tried = self.addresses.iter().all(|a| unreachable.contains_key(a));
            if !answered && all_tried && started.elapsed() >= Duration::from_secs(3).min(patience) {
                let details = unreachable
                    .iter()
                    .map(|(a, why)| format!("{a}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                // The two ends may disagree about TLS: say so, and what to do.
                for (a, why) in &unreachable {
                    if let Some(hint) = crate::security::tls_diagnosis::tls_hint(a, why).await {
                        return Err(Status::unavailable(format!("{hint} ({details})")));
                    }
                }
                return Err(Status::unavailable(format!(
                    "cannot reach the driver ({details}); is the cluster up? (`ringleader cluster status`)"
                )));
            }
            if started.elapsed() >= patience {
                // What each driver that did not refuse said first, then the last answer.
                let seen: Vec<String> = unreachable.iter().map(|(a, why)| format!("{a}: {why}")).collect();
                return Err(Status::unavailable(format!(
                    "no driver of {} answered as leader within {:.0} s ({}last: {address}: {})",
                    self.addresses.join(","),
                    patience.as_secs_f64(),
                    seen.iter().map(|s| format!("{s}; ")).collect::<String>(),
                    status.message()
                )));
            }
            if leader_hint(&status).is_none() {
                // No leader named: an election is under way, or this driver is down.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
    }
}

/// Whether `status` is a driver's refusal because it does not lead (so a driver answered).
pub fn is_refusal(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.message().contains("not the leader")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_leader() {
        let status = not_leader(Some("127.0.0.1:7001"));
        assert!(is_failover(&status));
        assert_eq!(leader_hint(&status).as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(leader_hint(&not_leader(None)), None);
    }

    #[tokio::test]
    async fn fail_over_follows_the_hint_then_cycles() {
        let group = DriverGroup::new(vec!["127.0.0.1:1".into(), "127.0.0.1:2".into(), "127.0.0.1:3".into()])
            .expect("valid addresses");
        group.fail_over("127.0.0.1:1", &not_leader(Some("127.0.0.1:3")));
        assert_eq!(group.current().0, "127.0.0.1:3");
        // A stale caller's failure does not move the group again.
        group.fail_over("127.0.0.1:1", &Status::unavailable("gone"));
        assert_eq!(group.current().0, "127.0.0.1:3");
        group.fail_over("127.0.0.1:3", &Status::unavailable("gone"));
        assert_eq!(group.current().0, "127.0.0.1:1");
    }
}
