//! The consistent-hash ring that places dataset partitions and reduce partitions on workers.
//!
//! Each node owns `weight × vnodes` points on a 64-bit circle (xxh3 of `"{node}#{i}"`); a
//! key belongs to the first point clockwise from its own hash. When a node joins or leaves,
//! only keys on its arcs move. Replicas are the next *distinct* nodes clockwise.

use std::collections::BTreeMap;
use std::fmt::Display;

use xxhash_rust::xxh3::xxh3_64;

/// Default number of virtual nodes per unit of weight.
pub const DEFAULT_VNODES: u32 = 256;

/// A consistent-hash ring over nodes of type `N`.
///
/// # Examples
/// ```
/// use ringleader_core::net::ring::Ring;
/// let mut ring = Ring::new(64);
/// ring.add("worker-1".to_string(), 1);
/// ring.add("worker-2".to_string(), 1);
/// let owners = ring.owners(b"dataset/7", 2);
/// assert_eq!(owners.len(), 2);
/// assert_ne!(owners[0], owners[1]);
/// ```
#[derive(Debug, Clone)]
pub struct Ring<N> {
    vnodes: u32,
    /// Node -> weight; a BTreeMap so iteration (and thus the ring) is deterministic.
    nodes: BTreeMap<N, u32>,
    /// Sorted points: (position, node index into `order`).
    points: Vec<(u64, usize)>,
    /// Nodes in the order `points` refers to.
    order: Vec<N>,
}

impl<N: Clone + Ord + Display> Ring<N> {
    /// An empty ring with `vnodes` points per unit of weight.
    pub fn new(vnodes: u32) -> Self {
        Ring {
            vnodes: vnodes.max(1),
            nodes: BTreeMap::new(),
            points: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Adds `node` (or changes its weight); weight 0 is treated as 1.
    pub fn add(&mut self, node: N, weight: u32) {
        self.nodes.insert(node, weight.max(1));
        self.rebuild();
    }

    /// Removes `node`; returns whether it was present.
    pub fn remove(&mut self, node: &N) -> bool {
        let present = self.nodes.remove(node).is_some();
        if present {
            self.rebuild();
        }
        present
    }

    /// The nodes on the ring, in order.
    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.nodes.keys()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn rebuild(&mut self) {
        self.order = self.nodes.keys().cloned().collect();
        self.points.clear();
        for (index, (node, weight)) in self.nodes.iter().enumerate() {
            for v in 0..self.vnodes * weight {
                let position = xxh3_64(format!("{node}#{v}").as_bytes());
                self.points.push((position, index));
            }
        }
        self.points.sort_unstable();
    }

    /// The position of a key on the circle.
    pub fn position(key: &[u8]) -> u64 {
        xxh3_64(key)
    }

    /// Up to `n` distinct nodes owning `key`, clockwise from its position: the first is the
    /// primary, the rest its replicas.
    pub fn owners(&self, key: &[u8], n: usize) -> Vec<&N> {
        let want = n.min(self.order.len());
        let mut found: Vec<usize> = Vec::with_capacity(want);
        if want == 0 {
            return Vec::new();
        }
        let start = self.points.partition_point(|&(p, _)| p < Self::position(key));
        for i in 0..self.points.len() {
            let (_, node) = self.points[(start + i) % self.points.len()];
            if !found.contains(&node) {
                found.push(node);
                if found.len() == want {
                    break;
                }
            }
        }
        found.into_iter().map(|i| &self.order[i]).collect()
    }

    /// The owners of a stored dataset's partition, in ring order: its replicas first, then
    /// the spares a write or a repair turns to.
    pub fn partition_owners(&self, dataset: &str, partition: u32, want: usize) -> Vec<&N> {
        self.owners(format!("{dataset}/{partition}").as_bytes(), want)
    }

    /// The primary owner of `key`, if the ring has any node.
    pub fn owner(&self, key: &[u8]) -> Option<&N> {
        self.owners(key, 1).into_iter().next()
    }

    /// Each node's share of the circle (fractions summing to 1).
    pub fn shares(&self) -> BTreeMap<N, f64> {
        let mut shares: BTreeMap<N, f64> = self.nodes.keys().map(|n| (n.clone(), 0.0)).collect();
        let Some(&(last, _)) = self.points.last() else {
            return shares;
        };
        let mut previous = last;
        for &(position, node) in &self.points {
            // The arc (previous, position] belongs to `node`; wrapping subtraction handles
            // the arc that crosses zero.
            let arc = position.wrapping_sub(previous);
            let arc = if self.points.len() == 1 { u64::MAX } else { arc };
            if let Some(s) = shares.get_mut(&self.order[node]) {
                *s += arc as f64 / u64::MAX as f64;
            }
            previous = position;
        }
        shares
    }
}
