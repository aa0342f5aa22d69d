//! Every operator against a sequential computation of the same input, over random inputs.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::helpers::engine;

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn narrow_ops_match_iterators(xs in prop::collection::vec(-1000i64..1000, 0..300), parts in 1usize..6) {
        let ctx = engine(2, 3);
        let ds = ctx.parallelize(xs.clone(), parts).unwrap();
        let got = ds.map(|x| x * 3).filter(|x| x % 2 == 0).flat_map(|x| vec![x, x + 1]).collect().unwrap();
        let want: Vec<i64> = xs.iter().map(|x| x * 3).filter(|x| x % 2 == 0).flat_map(|x| vec![x, x + 1]).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(ds.count().unwrap(), xs.len() as u64);
        prop_assert_eq!(ds.sum().unwrap(), xs.iter().sum::<i64>());
        prop_assert_eq!(ds.reduce(|a, b| a.max(b)).unwrap(), xs.iter().copied().max());
        prop_assert_eq!(ds.take(7).unwrap(), xs.iter().copied().take(7).collect::<Vec<_>>());
    }

    #[test]
    fn reduce_group_distinct_match_maps(pairs in prop::collection::vec((0u8..20, 0i64..100), 0..400), parts in 1usize..5) {
        let ctx = engine(2, 4);
        let ds = ctx.parallelize(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(), parts).unwrap();
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (k, v) in &pairs {
            *want.entry(k.to_string()).or_default() += v;
            groups.entry(k.to_string()).or_default().push(*v);
        }
        let got: BTreeMap<String, i64> = ds.reduce_by_key(|a, b| a + b).collect().unwrap().into_iter().collect();
        prop_assert_eq!(got, want);
        let got_groups: BTreeMap<String, Vec<i64>> = ds.group_by_key().collect().unwrap().into_iter().map(|(k, v)| (k, sorted(v))).collect();
        let want_groups: BTreeMap<String, Vec<i64>> = groups.into_iter().map(|(k, v)| (k, sorted(v))).collect();
        prop_assert_eq!(got_groups, want_groups);
        let keys = ds.map(|(k, _)| k).distinct().collect().unwrap();
        let want_keys: BTreeSet<String> = pairs.iter().map(|(k, _)| k.to_string()).collect();
        prop_assert_eq!(keys.len(), want_keys.len());
        prop_assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), want_keys);
    }

    #[test]
    fn sort_matches_std_sort(xs in prop::collection::vec(any::<u32>(), 0..500), parts in 1u32..7) {
        let ctx = engine(2, parts);
        let got = ctx.parallelize(xs.clone(), 3).unwrap().sort_by_key(|x| *x).collect().unwrap();
        prop_assert_eq!(got, sorted(xs));
    }

    #[test]
    fn join_matches_nested_loops(left in prop::collection::vec((0i64..15, 0i64..9), 0..60), right in prop::collection::vec((0i64..15, 0i64..9), 0..60)) {
        let ctx = engine(2, 3);
        let l = ctx.parallelize(left.clone(), 2).unwrap();
        let r = ctx.parallelize(right.clone(), 3).unwrap();
        let got = sorted(l.join(&r).collect().unwrap());
        let mut want = Vec::new();
        for (k, v) in &left {
            for (k2, w) in &right {
                if k == k2 {
                    want.push((*k, (*v, *w)));
                }
            }
        }
        prop_assert_eq!(got, sorted(want));
    }
}

#[test]
fn union_keeps_both_sides_in_order() {
    let ctx = engine(2, 2);
    let a = ctx.parallelize(vec![1i64, 2], 1).unwrap();
    let b = ctx.parallelize(vec![3i64], 1).unwrap();
    assert_eq!(a.union(&b).map(|x| x * 10).collect().unwrap(), vec![10, 20, 30]);
}

#[test]
fn map_with_ships_state_and_map_partitions_sees_whole_partitions() {
    let ctx = engine(2, 2);
    let ds = ctx.parallelize((1..=6i64).collect(), 2).unwrap();
    let words = vec!["zero".to_string(), "one".to_string(), "two".to_string()];
    let named = ds
        .map_with(words, |words, x| words[(x % 3) as usize].clone())
        .collect()
        .unwrap();
    assert_eq!(named, vec!["one", "two", "zero", "one", "two", "zero"]);
    let counts = ds.map_partitions(|rows| Some(rows.count() as u64)).collect().unwrap();
    assert_eq!(counts, vec![3, 3]);
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, PartialOrd)]
struct Reading {
    sensor: String,
    value: Option<f64>,
    tags: Vec<String>,
}

#[test]
fn struct_rows_round_trip_through_arrow_shuffles() {
    let ctx = engine(2, 3);
    let rows: Vec<Reading> = (0..50)
        .map(|i| Reading {
            sensor: format!("s{}", i % 4),
            value: (i % 5 != 0).then_some(i as f64),
            tags: vec![format!("t{i}")],
        })
        .collect();
    let ds = ctx.parallelize(rows.clone(), 4).unwrap();
    // Through a shuffle (group_by_key) and back: every row survives unchanged.
    let mut back: Vec<Reading> = ds
        .key_by(|r| r.sensor.clone())
        .group_by_key()
        .flat_map(|(_, rs)| rs)
        .collect()
        .unwrap();
    back.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut want = rows;
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(back, want);
}

#[test]
fn sort_of_many_duplicate_keys_is_complete_and_ordered() {
    let ctx = engine(2, 8);
    let xs: Vec<i64> = (0..5000).map(|i| (i * 7919) % 3).collect();
    let got = ctx
        .parallelize(xs.clone(), 4)
        .unwrap()
        .sort_by_key(|x| *x)
        .collect()
        .unwrap();
    assert_eq!(got, sorted(xs));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// One shuffled dataset read from two places in one job (a self-join, a union with
    /// itself, a sort sampling it): every read sees all of it.
    #[test]
    fn a_shuffle_read_twice_in_one_job_is_whole_both_times(
        pairs in prop::collection::vec((0u8..12, 0i64..50), 1..300),
        parts in 1usize..4,
    ) {
        let ctx = engine(2, 3);
        let summed = ctx.parallelize(pairs.clone(), parts).unwrap().reduce_by_key(|a, b| a + b);
        let mut sums: BTreeMap<u8, i64> = BTreeMap::new();
        for (k, v) in &pairs {
            *sums.entry(*k).or_default() += v;
        }
        let want_join: Vec<(u8, (i64, i64))> = sums.iter().map(|(k, s)| (*k, (*s, *s))).collect();
        prop_assert_eq!(sorted(summed.join(&summed).collect().unwrap()), want_join);
        let twice: Vec<(u8, i64)> = sums.iter().flat_map(|(k, s)| [(*k, *s), (*k, *s)]).collect();
        prop_assert_eq!(sorted(summed.union(&summed).collect().unwrap()), twice);
        let by_sum = summed.sort_by_key(|(_, s)| *s).collect().unwrap();
        let mut want_sorted: Vec<(u8, i64)> = sums.into_iter().collect();
        want_sorted.sort_by_key(|(_, s)| *s);
        prop_assert_eq!(
            by_sum.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            want_sorted.iter().map(|(_, s)| *s).collect::<Vec<_>>()
        );
        prop_assert_eq!(sorted(by_sum), sorted(want_sorted));
    }
}
