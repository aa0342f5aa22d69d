//! Who is in a driver group: node ids and addresses, as every driver is told with
//! `--peers`, and the fingerprint that names the group. A data directory remembers the
//! fingerprint it was created for, and Raft RPCs carry it, so a driver of another group
//! (or one told a different peer list) is refused instead of corrupting this one.

use std::collections::BTreeMap;
use std::fmt;

/// The drivers of one group, by node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers(BTreeMap<u64, String>);

/// A peer list that cannot describe a group.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PeersError {
    /// An item is not `ID=HOST:PORT`.
    #[error("--peers item {0:?} is not ID=HOST:PORT (for example 1=127.0.0.1:7101)")]
    Malformed(String),
    /// Node id 0 is reserved.
    #[error("--peers: node ids start at 1 ({0:?})")]
    ZeroId(String),
    /// One id appears twice.
    #[error("--peers names node {0} twice; every driver needs its own id")]
    DuplicateId(u64),
    /// One address appears twice.
    #[error("--peers gives nodes {0} and {1} the same address {2}")]
    DuplicateAddress(u64, u64, String),
    /// This driver's id is not in the list.
    #[error("--id {0} is not in --peers ({1})")]
    NotAMember(u64, String),
}

impl Peers {
    /// Parses `1=host:port,2=host:port,…`.
    pub fn parse(text: &str) -> Result<Peers, PeersError> {
        let mut peers = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, address) = item
                .split_once('=')
                .ok_or_else(|| PeersError::Malformed(item.to_string()))?;
            let id: u64 = id.trim().parse().map_err(|_| PeersError::Malformed(item.to_string()))?;
            let address = address.trim();
            if id == 0 {
                return Err(PeersError::ZeroId(item.to_string()));
            }
            if address.is_empty() || !address.contains(':') {
                return Err(PeersError::Malformed(item.to_string()));
            }
            if let Some((other, _)) = peers.iter().find(|(_, a)| *a == address) {
                return Err(PeersError::DuplicateAddress(*other, id, address.to_string()));
            }
            if peers.insert(id, address.to_string()).is_some() {
                return Err(PeersError::DuplicateId(id));
            }
        }
        Ok(Peers(peers))
    }

    /// A group of one.
    pub fn single(id: u64, address: String) -> Peers {
        Peers(BTreeMap::from([(id, address)]))
    }

    /// Checks that `id` is a member.
    pub fn check_member(&self, id: u64) -> Result<&str, PeersError> {
        self.0
            .get(&id)
            .map(String::as_str)
            .ok_or_else(|| PeersError::NotAMember(id, self.to_string()))
    }

    /// Node ids and addresses.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &str)> {
        self.0.iter().map(|(id, a)| (*id, a.as_str()))
    }

    /// The address of node `id`.
    pub fn address(&self, id: u64) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }

    /// How many drivers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many drivers make a majority.
    pub fn majority(&self) -> usize {
        self.0.len() / 2 + 1
    }

    /// The group's fingerprint: a hash of the sorted peer list, in hex. A group of one
    /// talks to nobody, so its fingerprint names only its id (its address may change).
    pub fn fingerprint(&self) -> String {
        if let [(id, _)] = self.0.iter().collect::<Vec<_>>()[..] {
            return format!("single-{id}");
        }
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(self.to_string().as_bytes()))
    }
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|(id, a)| format!("{id}={a}")).collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_fingerprints_in_any_order() {
        let a = Peers::parse("2=127.0.0.1:2,1=127.0.0.1:1").expect("valid");
        let b = Peers::parse("1=127.0.0.1:1, 2=127.0.0.1:2").expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.majority(), 2);
        let c = Peers::parse("1=127.0.0.1:1,2=127.0.0.1:3").expect("valid");
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn refuses_bad_lists() {
        assert_eq!(
            Peers::parse("1=a:1,1=b:2"),
            Err(PeersError::DuplicateId(1)),
            "two nodes with one id"
        );
        assert!(matches!(
            Peers::parse("1=a:1,2=a:1"),
            Err(PeersError::DuplicateAddress(1, 2, _))
        ));
        assert!(matches!(Peers::parse("x=a:1"), Err(PeersError::Malformed(_))));
        assert!(matches!(Peers::parse("0=a:1"), Err(PeersError::ZeroId(_))));
        let peers = Peers::parse("1=a:1").expect("valid");
        assert!(matches!(peers.check_member(2), Err(PeersError::NotAMember(2, _))));
    }
}
