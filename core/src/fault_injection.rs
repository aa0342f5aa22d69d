//! Faults Ringleader's own tests inject on purpose, each an environment variable set on one
//! process (a client, a driver, a worker) and read where the fault applies. None is set in
//! production; each opens a window a test needs (room to take a worker away, a fetch held
//! in flight, a copy not yet made) or breaks one path the same way every time. A test that
//! sets one also shows that the fault fired.

use std::time::Duration;

/// Client: milliseconds to wait between a job's success and fetching its held results.
pub const FETCH_DELAY_MS: &str = "RINGLEADER_TEST_FETCH_DELAY_MS";

/// Worker: how its Flight service serves shuffle blocks: `refuse` (every `do_get` of a
/// block fails as unavailable) or `slow:MS` (each batch of a block waits MS milliseconds
/// first, so a fetch stays in flight).
pub const SHUFFLE_SERVING: &str = "RINGLEADER_TEST_SHUFFLE_SERVING";

/// Driver: milliseconds to wait after a worker is lost before copying its stored dataset
/// partitions to other workers.
pub const REPAIR_DELAY_MS: &str = "RINGLEADER_TEST_REPAIR_DELAY_MS";

/// The duration in milliseconds that `var` holds, if it is set to a number.
pub fn millis(var: &str) -> Option<Duration> {
    std::env::var(var).ok()?.trim().parse().ok().map(Duration::from_millis)
}

/// How a worker serves shuffle blocks ([`SHUFFLE_SERVING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShuffleServing {
    /// As it should.
    Normal,
    /// Every fetch of a block fails.
    Refuse,
    /// Each batch waits this long before it is sent.
    Slow(Duration),
}

impl ShuffleServing {
    /// What [`SHUFFLE_SERVING`] asks of this process (an unknown value is ignored).
    pub fn from_env() -> ShuffleServing {
        ShuffleServing::parse(&std::env::var(SHUFFLE_SERVING).unwrap_or_default())
    }

    fn parse(text: &str) -> ShuffleServing {
        match text.trim() {
            "refuse" => ShuffleServing::Refuse,
            other => match other.strip_prefix("slow:").and_then(|ms| ms.parse().ok()) {
                Some(ms) => ShuffleServing::Slow(Duration::from_millis(ms)),
                None => ShuffleServing::Normal,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_serving_parses_its_faults_and_ignores_the_rest() {
        assert_eq!(ShuffleServing::parse("refuse"), ShuffleServing::Refuse);
        assert_eq!(
            ShuffleServing::parse("slow:250"),
            ShuffleServing::Slow(Duration::from_millis(250))
        );
        for normal in ["", "slow:", "slow:x", "fast"] {
            assert_eq!(ShuffleServing::parse(normal), ShuffleServing::Normal, "{normal:?}");
        }
    }
}
