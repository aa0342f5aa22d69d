//! Every operator of Spark's first-week vocabulary on seeded random inputs, each result
//! checked against a sequential computation of the same input in this process. Run on a
//! cluster, it proves the operators there (their trampolines shipped, their shuffles over
//! gRPC); `sample` is also checked against the embedded engine in this process, since a
//! seed must give the same rows on any engine.
//!
//! ```text
//! cargo build --example operators
//! target/debug/examples/operators [--seed N] [--rows N]
//! ```
//!
//! Prints `operators: N checks passed (seed S)`; a mismatch exits 1 naming the operator.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use ringleader::{Config, Context, Dataset};

/// Check the operators against sequential computations.
#[derive(Parser)]
struct Args {
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows of the larger inputs.
    #[arg(long, default_value_t = 3000)]
    rows: usize,
    /// Instead: broadcast this many bytes and check every task of two jobs reads them whole.
    #[arg(long)]
    broadcast_bytes: Option<usize>,
    /// Instead: cache a dataset, write `DIR/cached`, wait (at most 2 minutes) for
    /// `DIR/go`, and read the cache again, printing how many rows were computed again.
    #[arg(long)]
    cache_check: Option<std::path::PathBuf>,
}

/// Caches 8 partitions on disk, then reads them again after the test has had its way with
/// the workers (see `--cache-check`): the sums must stay the sequential one's.
fn cache_check(ctx: &Context, dir: &std::path::Path) -> anyhow::Result<()> {
    let computed = ctx.accumulator::<u64>("rows computed");
    let xs = ctx
        .parallelize((0..40_000i64).collect(), 8)?
        .map_with(computed.clone(), |computed, x| {
            computed.add(1);
            x * 3
        })
        .persist(ringleader::StorageLevel::Disk);
    let before = ctx.parallelize((0..8i64).collect(), 8)?;
    let budget_before = task_budgets(&before)?.into_iter().max();
    let want: i64 = (0..40_000i64).map(|x| x * 3).sum();
    ensure!(xs.sum()? == want, "the first sum differs from the sequential one");
    let first = computed.value();
    // Tasks reading the cache run where its partitions are, and their workers count those
    // partitions against the memory they give executors.
    let budget_after = task_budgets(&xs)?.into_iter().min();
    if let (Some(before), Some(after)) = (budget_before, budget_after) {
        println!("cache check: task memory budget {before} bytes before caching, {after} beside the cache");
    }
    std::fs::write(dir.join("cached"), "")?;
    let waited = std::time::Instant::now();
    while !dir.join("go").exists() {
        ensure!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "no go within 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure!(
        xs.sum()? == want,
        "the sum after the wait differs from the sequential one"
    );
    println!(
        "cache check: both sums equal the sequential one; {first} rows computed, then {} again",
        computed.value() - first
    );
    Ok(())
}

/// The memory budget each task of a job over `rows` was given by its worker (none embedded).
fn task_budgets<T: ringleader::Data>(rows: &ringleader::Dataset<T>) -> anyhow::Result<Vec<u64>> {
    Ok(rows
        .map_partitions(|_| {
            std::env::var("RINGLEADER_WORKER_MEMORY")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .into_iter()
                .collect::<Vec<u64>>()
        })
        .collect()?)
}

/// The `i`th byte of a broadcast value: a pattern a truncated or shifted copy breaks.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 11) as u8
}

/// Broadcasts `bytes` bytes; two jobs of 8 tasks each check the value whole in every row.
/// Prints what it checked and what an accumulator counted.
fn broadcast(ctx: &Context, bytes: usize) -> anyhow::Result<()> {
    let value: Vec<u8> = (0..bytes).map(pattern).collect();
    let shared = ctx.broadcast(value)?;
    let rows = ctx.accumulator::<u64>("rows checked");
    let state = (shared, rows.clone(), bytes);
    let checked = ctx
        .parallelize((0..800u64).collect(), 8)?
        .map_with(state, |(shared, rows, bytes), i| {
            let value = shared.value();
            let at = (i as usize * 7919) % value.len().max(1);
            rows.add(1);
            value.len() == *bytes && value.get(at).is_none_or(|b| *b == pattern(at))
        });
    let good = checked.filter(|ok| *ok).count()?;
    let again = checked.filter(|ok| *ok).count()?;
    ensure!(
        good == 800 && again == 800,
        "rows that saw the broadcast whole: {good} and {again} of 800"
    );
    println!(
        "broadcast {bytes} bytes read whole by 2 jobs of 8 tasks; accumulated {} rows",
        rows.value()
    );
    Ok(())
}

/// splitmix64: a small seeded generator, enough to make inputs.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Keys from a few hot values three times in four (skew), else from `0..spread`.
    fn skewed_key(&mut self, spread: u64) -> u32 {
        if self.below(4) < 3 {
            self.below(3) as u32
        } else {
            self.below(spread) as u32
        }
    }

    fn pairs(&mut self, n: usize, spread: u64) -> Vec<(u32, i64)> {
        (0..n)
            .map(|_| (self.skewed_key(spread), self.below(1000) as i64 - 500))
            .collect()
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn lookup(rows: &[(u32, i64)]) -> BTreeMap<u32, Vec<i64>> {
    let mut map: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for (k, v) in rows {
        map.entry(*k).or_default().push(*v);
    }
    map
}

/// Counts checks and names the first one that fails.
struct Checks(usize);

impl Checks {
    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) -> anyhow::Result<()> {
        self.0 += 1;
        if got != want {
            let (got, want) = (format!("{got:?}"), format!("{want:?}"));
            bail!(
                "{what}: the result differs from the sequential one\n  got:  {}\n  want: {}",
                &got[..got.len().min(400)],
                &want[..want.len().min(400)]
            );
        }
        Ok(())
    }
}

/// The joins and `cogroup` of `left` and `right`.
fn joins(
    checks: &mut Checks,
    what: &str,
    l: &Dataset<(u32, i64)>,
    r: &Dataset<(u32, i64)>,
    left: &[(u32, i64)],
    right: &[(u32, i64)],
) -> anyhow::Result<()> {
    let (lm, rm) = (lookup(left), lookup(right));
    let mut full = Vec::new();
    for (k, v) in left {
        match rm.get(k) {
            Some(ws) => full.extend(ws.iter().map(|w| (*k, (Some(*v), Some(*w))))),
            None => full.push((*k, (Some(*v), None))),
        }
    }
    full.extend(
        right
            .iter()
            .filter(|(k, _)| !lm.contains_key(k))
            .map(|(k, w)| (*k, (None, Some(*w)))),
    );
    let full = sorted(full);
    checks.equal(
        &format!("full_outer_join ({what})"),
        sorted(l.full_outer_join(r).collect()?),
        full.clone(),
    )?;
    let left_rows: Vec<_> = full.iter().filter_map(|(k, (v, w))| Some((*k, ((*v)?, *w)))).collect();
    checks.equal(
        &format!("left_outer_join ({what})"),
        sorted(l.left_outer_join(r).collect()?),
        sorted(left_rows),
    )?;
    let right_rows: Vec<_> = full.iter().filter_map(|(k, (v, w))| Some((*k, (*v, (*w)?)))).collect();
    checks.equal(
        &format!("right_outer_join ({what})"),
        sorted(l.right_outer_join(r).collect()?),
        sorted(right_rows),
    )?;
    let inner: Vec<_> = full
        .iter()
        .filter_map(|(k, (v, w))| Some((*k, ((*v)?, (*w)?))))
        .collect();
    checks.equal(&format!("join ({what})"), sorted(l.join(r).collect()?), sorted(inner))?;
    let keys: BTreeSet<u32> = lm.keys().chain(rm.keys()).copied().collect();
    let want: Vec<_> = keys
        .into_iter()
        .map(|k| {
            let side = |m: &BTreeMap<u32, Vec<i64>>| sorted(m.get(&k).cloned().unwrap_or_default());
            (k, (side(&lm), side(&rm)))
        })
        .collect();
    let got: Vec<_> = l
        .cogroup(r)
        .collect()?
        .into_iter()
        .map(|(k, (vs, ws))| (k, (sorted(vs), sorted(ws))))
        .collect();
    checks.equal(&format!("cogroup ({what})"), sorted(got), want)
}

fn check(ctx: &Context, args: &Args) -> anyhow::Result<usize> {
    let mut random = Random(args.seed);
    let mut checks = Checks(0);
    let left = random.pairs(args.rows, 200);
    // Fewer rows on the right, over a wider key range: keys on one side only, both ways.
    let right = random.pairs(args.rows / 10, 400);
    let l = ctx.parallelize(left.clone(), 5)?;
    let r = ctx.parallelize(right.clone(), 3)?;
    let empty = ctx.parallelize(Vec::<(u32, i64)>::new(), 2)?;
    joins(&mut checks, "skewed keys", &l, &r, &left, &right)?;
    joins(&mut checks, "empty right side", &l, &empty, &left, &[])?;
    joins(&mut checks, "empty left side", &empty, &r, &[], &right)?;

    let mut stats: BTreeMap<u32, (i64, u64)> = BTreeMap::new();
    for (k, v) in &left {
        let e = stats.entry(*k).or_default();
        *e = (e.0 + v, e.1 + 1);
    }
    let got: BTreeMap<u32, (i64, u64)> = l
        .aggregate_by_key(
            (0i64, 0u64),
            |(s, n), v| (s + v, n + 1),
            |(s1, n1), (s2, n2)| (s1 + s2, n1 + n2),
        )
        .collect()?
        .into_iter()
        .collect();
    checks.equal("aggregate_by_key", got, stats.clone())?;
    let counts: BTreeMap<u32, u64> = stats.iter().map(|(k, (_, n))| (*k, *n)).collect();
    checks.equal("count_by_key", l.count_by_key()?.into_iter().collect(), counts)?;
    let mut by_value: BTreeMap<(u32, i64), u64> = BTreeMap::new();
    for p in &left {
        *by_value.entry(*p).or_default() += 1;
    }
    checks.equal("count_by_value", l.count_by_value()?.into_iter().collect(), by_value)?;

    let xs: Vec<i64> = left.iter().map(|(_, v)| *v).collect();
    let ds = ctx.parallelize(xs.clone(), 7)?;
    let spread = ds.repartition(4);
    let sizes = spread.map_partitions(|rows| Some(rows.count())).collect()?;
    ensure!(sizes.len() == 4, "repartition(4) made {} partitions", sizes.len());
    ensure!(
        sizes.iter().max() <= sizes.iter().min().map(|m| m + 7).as_ref(),
        "repartition is uneven: {sizes:?}"
    );
    checks.equal("repartition", sorted(spread.collect()?), sorted(xs.clone()))?;
    checks.equal(
        "coalesce",
        ds.map(|x| x * 2).coalesce(3).collect()?,
        xs.iter().map(|x| x * 2).collect(),
    )?;
    // A held cache merges in order, without a shuffle (on a cluster: stored partitions
    // read one after the other).
    let held = ds.map(|x| x * 2).cache();
    checks.equal(
        "coalesce of a cache",
        held.coalesce(3).collect()?,
        xs.iter().map(|x| x * 2).collect(),
    )?;
    held.unpersist()?;
    let numbered = ds.zip_with_index().collect()?;
    checks.equal("zip_with_index", numbered, xs.iter().copied().zip(0u64..).collect())?;
    let mut ascending: Vec<(usize, i64)> = xs.iter().copied().enumerate().collect();
    ascending.sort_by_key(|(_, x)| *x);
    let indexed = ctx.parallelize(xs.iter().copied().enumerate().collect::<Vec<_>>(), 7)?;
    checks.equal(
        "take_ordered",
        indexed.take_ordered(10, |(_, x)| *x)?,
        ascending[..10.min(ascending.len())].to_vec(),
    )?;
    ascending.sort_by_key(|(_, x)| std::cmp::Reverse(*x));
    checks.equal(
        "top",
        indexed.top(10, |(_, x)| *x)?,
        ascending[..10.min(ascending.len())].to_vec(),
    )?;
    checks.equal("first", ds.first()?, xs.first().copied())?;
    checks.equal("fold", ds.fold(0, |a, b| a + b)?, xs.iter().sum())?;
    let tagged = ds
        .map_partitions_with_index(|i, rows| rows.map(move |x| (i, x)).collect::<Vec<_>>())
        .collect()?;
    checks.equal(
        "map_partitions_with_index",
        tagged.iter().map(|(_, x)| *x).collect::<Vec<_>>(),
        xs.clone(),
    )?;
    ensure!(
        tagged.windows(2).all(|w| w[0].0 <= w[1].0),
        "partition indexes out of order"
    );

    let small: Vec<u8> = (0..9).collect();
    let few = ctx.parallelize(xs[..xs.len().min(300)].to_vec(), 3)?;
    let want: Vec<(i64, u8)> = xs[..xs.len().min(300)]
        .iter()
        .flat_map(|x| small.iter().map(move |y| (*x, *y)))
        .collect();
    checks.equal(
        "cartesian",
        sorted(few.cartesian(&ctx.parallelize(small.clone(), 2)?).collect()?),
        sorted(want),
    )?;

    // The same seed draws the same rows on the embedded engine in this process.
    let local = Context::new(Config {
        progress: false,
        ..ctx.config().clone()
    })?;
    let here = local.parallelize(xs.clone(), 7)?;
    for with_replacement in [false, true] {
        let sample = ds.sample(with_replacement, 0.3, args.seed).collect()?;
        checks.equal(
            &format!("sample (with replacement: {with_replacement})"),
            sample,
            here.sample(with_replacement, 0.3, args.seed).collect()?,
        )?;
    }
    Ok(checks.0)
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        if let Some(bytes) = args.broadcast_bytes {
            return broadcast(ctx, bytes);
        }
        if let Some(dir) = &args.cache_check {
            return cache_check(ctx, dir);
        }
        let passed = check(ctx, &args).with_context(|| format!("seed {}", args.seed))?;
        println!("operators: {passed} checks passed (seed {})", args.seed);
        Ok(())
    })
}
