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

/// Keys drawn mostly from a few hot values (skew) and otherwise from a wide range, so that
/// both sides of a join share some keys and each has keys the other lacks.
fn skewed_pairs(max: usize) -> impl Strategy<Value = Vec<(u16, i64)>> {
    prop::collection::vec((prop_oneof![3 => 0u16..3, 1 => 0u16..60], -50i64..50), 0..max)
}

fn lookup(rows: &[(u16, i64)]) -> BTreeMap<u16, Vec<i64>> {
    let mut map: BTreeMap<u16, Vec<i64>> = BTreeMap::new();
    for (k, v) in rows {
        map.entry(*k).or_default().push(*v);
    }
    map
}

/// The full outer join of `left` and `right` by nested loops.
/// A full outer join's rows.
type FullRows = Vec<(u16, (Option<i64>, Option<i64>))>;
/// A cogroup's rows.
type CoGroups = Vec<(u16, (Vec<i64>, Vec<i64>))>;

fn full_outer(left: &[(u16, i64)], right: &[(u16, i64)]) -> FullRows {
    let (l, r) = (lookup(left), lookup(right));
    let mut out = Vec::new();
    for (k, v) in left {
        match r.get(k) {
            Some(ws) => out.extend(ws.iter().map(|w| (*k, (Some(*v), Some(*w))))),
            None => out.push((*k, (Some(*v), None))),
        }
    }
    for (k, w) in right {
        if !l.contains_key(k) {
            out.push((*k, (None, Some(*w))));
        }
    }
    sorted(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, .. ProptestConfig::default() })]

    /// The outer joins and `cogroup` against nested loops: skewed keys, empty sides, keys
    /// only on one side.
    #[test]
    fn outer_joins_and_cogroup_match_nested_loops(left in skewed_pairs(80), right in skewed_pairs(80), parts in 1usize..4, broadcast in any::<bool>()) {
        // Small sides are broadcast by default; with the threshold at 0 both are shuffled.
        let ctx = ringleader::Context::new(ringleader::Config {
            threads: 2,
            shuffle_partitions: 3,
            progress: false,
            broadcast_join_bytes: if broadcast { 4 << 20 } else { 0 },
            ..ringleader::Config::default()
        })
        .unwrap();
        let l = ctx.parallelize(left.clone(), parts).unwrap();
        let r = ctx.parallelize(right.clone(), 2).unwrap();
        for plan in [l.join(&r).explain(), l.left_outer_join(&r).explain(), l.right_outer_join(&r).explain()] {
            prop_assert_eq!(plan.starts_with("broadcast hash join"), broadcast, "{}", plan);
        }
        prop_assert!(l.full_outer_join(&r).explain().starts_with("shuffle"), "a full outer join never broadcasts");
        let full = full_outer(&left, &right);
        prop_assert_eq!(sorted(l.full_outer_join(&r).collect().unwrap()), full.clone());
        let want_left: Vec<(u16, (i64, Option<i64>))> = full
            .iter()
            .filter_map(|(k, (v, w))| Some((*k, ((*v)?, *w))))
            .collect();
        prop_assert_eq!(sorted(l.left_outer_join(&r).collect().unwrap()), sorted(want_left));
        let want_right: Vec<(u16, (Option<i64>, i64))> = full
            .iter()
            .filter_map(|(k, (v, w))| Some((*k, (*v, (*w)?))))
            .collect();
        prop_assert_eq!(sorted(l.right_outer_join(&r).collect().unwrap()), sorted(want_right));
        let want_inner: Vec<(u16, (i64, i64))> = full
            .iter()
            .filter_map(|(k, (v, w))| Some((*k, ((*v)?, (*w)?))))
            .collect();
        prop_assert_eq!(sorted(l.join(&r).collect().unwrap()), sorted(want_inner));

        let (lm, rm) = (lookup(&left), lookup(&right));
        let keys: BTreeSet<u16> = lm.keys().chain(rm.keys()).copied().collect();
        let want_groups: CoGroups = keys
            .into_iter()
            .map(|k| (k, (sorted(lm.get(&k).cloned().unwrap_or_default()), sorted(rm.get(&k).cloned().unwrap_or_default()))))
            .collect();
        let got_groups: CoGroups = l
            .cogroup(&r)
            .collect()
            .unwrap()
            .into_iter()
            .map(|(k, (vs, ws))| (k, (sorted(vs), sorted(ws))))
            .collect();
        prop_assert_eq!(sorted(got_groups), want_groups);
    }

    /// `aggregate_by_key`, `count_by_key`, `count_by_value` against maps built row by row.
    #[test]
    fn aggregations_by_key_match_maps(pairs in skewed_pairs(300), parts in 1usize..5) {
        let ctx = engine(2, 3);
        let ds = ctx.parallelize(pairs.clone(), parts).unwrap();
        let mut stats: BTreeMap<u16, (i64, u64, i64)> = BTreeMap::new();
        let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
        for (k, v) in &pairs {
            let e = stats.entry(*k).or_insert((0, 0, i64::MIN));
            *e = (e.0 + v, e.1 + 1, e.2.max(*v));
            *counts.entry(*k).or_default() += 1;
        }
        let got: BTreeMap<u16, (i64, u64, i64)> = ds
            .aggregate_by_key(
                (0i64, 0u64, i64::MIN),
                |(s, n, m), v| (s + v, n + 1, m.max(v)),
                |(s1, n1, m1), (s2, n2, m2)| (s1 + s2, n1 + n2, m1.max(m2)),
            )
            .collect()
            .unwrap()
            .into_iter()
            .collect();
        prop_assert_eq!(got, stats);
        let by_key: BTreeMap<u16, u64> = ds.count_by_key().unwrap().into_iter().collect();
        prop_assert_eq!(&by_key, &counts);
        let mut by_value: BTreeMap<(u16, i64), u64> = BTreeMap::new();
        for p in &pairs {
            *by_value.entry(*p).or_default() += 1;
        }
        let got_values: BTreeMap<(u16, i64), u64> = ds.count_by_value().unwrap().into_iter().collect();
        prop_assert_eq!(got_values, by_value);
    }

    /// `repartition` and `coalesce` keep every row (coalesce also their order) and give the
    /// partitions asked for; `zip_with_index` numbers the rows in order; `map_partitions_with_index`
    /// sees each partition's index.
    #[test]
    fn partitioning_operators_keep_every_row(xs in prop::collection::vec(-1000i64..1000, 0..300), parts in 1usize..7, n in 1u32..6) {
        let ctx = engine(2, 3);
        let ds = ctx.parallelize(xs.clone(), parts).unwrap();
        let spread = ds.repartition(n);
        let sizes = spread.map_partitions(|rows| Some(rows.count())).collect().unwrap();
        prop_assert_eq!(sizes.len(), n as usize);
        prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= parts, "uneven: {:?}", sizes);
        prop_assert_eq!(sorted(spread.collect().unwrap()), sorted(xs.clone()));
        let merged = ds.map(|x| x + 1).coalesce(n);
        prop_assert_eq!(merged.map_partitions(|rows| Some(rows.count())).collect().unwrap().len(), parts.min(n as usize));
        prop_assert_eq!(merged.collect().unwrap(), xs.iter().map(|x| x + 1).collect::<Vec<_>>());
        // After a shuffle, coalesce plans the shuffle with fewer partitions.
        let sums = ds.map(|x| (x % 7, x)).reduce_by_key(|a, b| a + b).coalesce(n);
        prop_assert!(sums.map_partitions(|rows| Some(rows.count())).collect().unwrap().len() <= n as usize);
        let mut want_sums: BTreeMap<i64, i64> = BTreeMap::new();
        for x in &xs {
            *want_sums.entry(x % 7).or_default() += x;
        }
        prop_assert_eq!(sums.collect().unwrap().into_iter().collect::<BTreeMap<_, _>>(), want_sums);
        let numbered = ds.zip_with_index().collect().unwrap();
        prop_assert_eq!(numbered, xs.iter().copied().zip(0u64..).collect::<Vec<_>>());
        let indexed = ds.map_partitions_with_index(|i, rows| rows.map(move |_| i).collect::<Vec<_>>()).collect().unwrap();
        prop_assert!(indexed.windows(2).all(|w| w[0] <= w[1]) && indexed.last().is_none_or(|&i| (i as usize) < parts));
    }

    /// `top`, `take_ordered`, `first` and `fold` against a sort and a fold of the rows.
    #[test]
    fn bounded_actions_match_a_sort(xs in prop::collection::vec((0i64..20, 0u32..1000), 0..300), parts in 1usize..5, n in 0usize..12) {
        let ctx = engine(2, 3);
        let ds = ctx.parallelize(xs.clone(), parts).unwrap();
        // Of equal keys, earlier rows first: a stable sort.
        let mut ascending = xs.clone();
        ascending.sort_by_key(|(k, _)| *k);
        prop_assert_eq!(ds.take_ordered(n, |(k, _)| *k).unwrap(), ascending.iter().copied().take(n).collect::<Vec<_>>());
        let mut descending = xs.clone();
        descending.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
        prop_assert_eq!(ds.top(n, |(k, _)| *k).unwrap(), descending.iter().copied().take(n).collect::<Vec<_>>());
        prop_assert_eq!(ds.first().unwrap(), xs.first().copied());
        let total = ds.map(|(k, v)| k + v as i64).fold(0, |a, b| a + b).unwrap();
        prop_assert_eq!(total, xs.iter().map(|(k, v)| k + *v as i64).sum::<i64>());
    }

    /// `sample`: the same seed gives the same rows; rows are drawn from the input only;
    /// fraction 0 keeps nothing and 1 (without replacement) everything; `cartesian` against
    /// two nested loops.
    #[test]
    fn sample_and_cartesian_match_their_definitions(xs in prop::collection::vec(0u32..50, 0..120), ys in prop::collection::vec(0u8..9, 0..15), seed in any::<u64>(), parts in 1usize..4) {
        let ctx = engine(2, 4);
        let ds = ctx.parallelize(xs.clone(), parts).unwrap();
        for with_replacement in [false, true] {
            let a = ds.sample(with_replacement, 0.5, seed).collect().unwrap();
            prop_assert_eq!(&a, &ds.sample(with_replacement, 0.5, seed).collect().unwrap());
            let mut left: BTreeMap<u32, usize> = BTreeMap::new();
            for x in &xs {
                *left.entry(*x).or_default() += 1;
            }
            if !with_replacement {
                for x in &a {
                    let n = left.get_mut(x).expect("a sampled row is an input row");
                    prop_assert!(*n > 0, "row {} drawn more often than it occurs", x);
                    *n -= 1;
                }
            } else {
                prop_assert!(a.iter().all(|x| left.contains_key(x)));
            }
            prop_assert!(ds.sample(with_replacement, 0.0, seed).collect().unwrap().is_empty());
        }
        prop_assert_eq!(ds.sample(false, 1.0, seed).collect().unwrap(), xs.clone());
        let other = ctx.parallelize(ys.clone(), 2).unwrap();
        let want: Vec<(u32, u8)> = xs.iter().flat_map(|x| ys.iter().map(move |y| (*x, *y))).collect();
        prop_assert_eq!(sorted(ds.cartesian(&other).collect().unwrap()), sorted(want));
    }
}

/// `sample` is statistically what it says: about `fraction` of the rows, with replacement
/// about `fraction` copies per row (a Poisson mean), and different seeds differ.
#[test]
fn sample_keeps_about_the_fraction_asked_for() {
    let ctx = engine(2, 3);
    let ds = ctx.parallelize((0..100_000u32).collect(), 4).unwrap();
    for (with_replacement, fraction) in [(false, 0.1), (false, 0.9), (true, 0.5), (true, 2.0)] {
        let got = ds.sample(with_replacement, fraction, 11).count().unwrap() as f64;
        let want = 100_000.0 * fraction;
        // Five standard deviations of a binomial (or Poisson) count.
        let sd = (want * if with_replacement { 1.0 } else { 1.0 - fraction }).sqrt();
        assert!(
            (got - want).abs() < 5.0 * sd,
            "{with_replacement} {fraction}: {got} rows, want about {want}"
        );
    }
    assert_ne!(
        ds.sample(false, 0.5, 1).collect().unwrap(),
        ds.sample(false, 0.5, 2).collect().unwrap()
    );
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Wide {
    name: String,
    count: i64,
    note: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Narrow {
    count: i64,
    name: String,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// `select` gives the fields a struct names, from rows as `parallelize` encodes them,
    /// after a narrow step, and read back from a cache.
    #[test]
    fn select_keeps_the_named_fields_of_every_row(rows in prop::collection::vec(("[a-z]{0,6}", any::<i64>(), prop::option::of("[a-z]{0,4}")), 0..120), parts in 1usize..4) {
        let ctx = engine(2, 3);
        let wide: Vec<Wide> = rows.into_iter().map(|(name, count, note)| Wide { name, count, note }).collect();
        let want: Vec<Narrow> = wide.iter().map(|w| Narrow { count: w.count, name: w.name.clone() }).collect();
        let ds = ctx.parallelize(wide.clone(), parts).unwrap();
        prop_assert_eq!(ds.select::<Narrow>().collect().unwrap(), want.clone());
        prop_assert_eq!(ds.filter(|_| true).select::<Narrow>().collect().unwrap(), want.clone());
        let cached = ds.cache();
        prop_assert_eq!(cached.count().unwrap(), wide.len() as u64);
        prop_assert_eq!(cached.select::<Narrow>().collect().unwrap(), want);
    }
}
