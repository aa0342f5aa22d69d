//! Where a source's rows are read from, decided here and nowhere else: local files the
//! workers read themselves (embedded, or a cluster on this machine), a stored dataset
//! (`ringleader://NAME`), or local files the workers cannot see, which first travel to the
//! cluster as a temporary stored dataset (removed when the program ends); rows given to
//! `parallelize` ride inside the plan unless they are large. A [`crate::Context`] only
//! builds the lineage node of the splits it gets back.

use std::path::Path;

use ringleader_core::io::source::{self, Split};
use ringleader_core::io::store::DatasetFormat;

use crate::cluster::Cluster;
use crate::engine::Engine;
use crate::{Error, Result};

/// The typed view a source asks of a stored dataset.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    /// Rows of exactly this format.
    Format(DatasetFormat),
    /// Any format whose rows decode into the row type.
    Any,
}

/// The splits a source of `format` rows at `path` reads (only `column`, if given) when they
/// are not local files the workers read themselves (`None` then): a stored dataset's, or a
/// temporary one's the files were uploaded into.
pub(crate) fn resolve(
    engine: &Engine,
    path: &Path,
    format: DatasetFormat,
    column: Option<&str>,
) -> Result<Option<Vec<Split>>> {
    if let Some(name) = ringleader_core::io::store::parse_url(path) {
        let expect = if format == DatasetFormat::Arrow {
            Expect::Any
        } else {
            Expect::Format(format)
        };
        return stored(engine, &name?, expect, column).map(Some);
    }
    if engine.workers_see_local_files()? {
        return Ok(None);
    }
    let Some(cluster) = engine.cluster_client() else {
        return Ok(None);
    };
    // Check the input here first: a missing path fails before anything is sent.
    let files = source::list_files(path, |_| true)?;
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let name = upload(
        engine,
        cluster,
        &format!("{} (the workers, on other machines, cannot see it)", path.display()),
        total,
        crate::transfer::PutRequest {
            name: String::new(),
            paths: vec![path.to_path_buf()],
            format: Some(format),
            column: column.map(str::to_string),
            splits: Vec::new(),
            partitions: 0,
            replicas: 0,
            overwrite: false,
            progress: cluster.progress(),
        },
    )?;
    stored(engine, &name, Expect::Format(format), None).map(Some)
}

/// A typed source's splits (CSV, Parquet): read by the workers where they can see the
/// client's files; otherwise read here and uploaded as a temporary Arrow dataset. A
/// `ringleader://` path is a stored Arrow dataset whose rows decode into the row type.
pub(crate) fn typed(
    engine: &Engine,
    path: &Path,
    splits: impl FnOnce() -> Result<Vec<(Split, u64)>>,
) -> Result<Vec<Split>> {
    if let Some(name) = ringleader_core::io::store::parse_url(path) {
        return stored(engine, &name?, Expect::Format(DatasetFormat::Arrow), None);
    }
    let splits = splits()?;
    if let Some(cluster) = engine.cluster_client()
        && !engine.workers_see_local_files()?
    {
        let total = splits.iter().map(|(_, bytes)| bytes).sum();
        let request = crate::transfer::PutRequest::of_splits(splits, cluster.progress());
        let what = format!("{} (the workers, on other machines, cannot see it)", path.display());
        let name = upload(engine, cluster, &what, total, request)?;
        return stored(engine, &name, Expect::Format(DatasetFormat::Arrow), None);
    }
    Ok(splits.into_iter().map(|(split, _)| split).collect())
}

/// The splits of rows given to `parallelize`: inside the plan, or, on a cluster and larger
/// than a plan should carry (the driver group's log keeps plans), uploaded once as a
/// temporary stored dataset.
pub(crate) fn inline(engine: &Engine, splits: Vec<(Split, u64)>) -> Result<Vec<Split>> {
    let total: u64 = splits.iter().map(|(_, bytes)| bytes).sum();
    if let Some(cluster) = engine.cluster_client()
        && total > ringleader_core::io::results::INLINE_RESULT_BYTES as u64
    {
        let request = crate::transfer::PutRequest::of_splits(splits, cluster.progress());
        let name = upload(engine, cluster, "the rows given to parallelize", total, request)?;
        return stored(engine, &name, Expect::Format(DatasetFormat::Arrow), None);
    }
    Ok(splits.into_iter().map(|(split, _)| split).collect())
}

/// The splits of the stored dataset `name`, checked to be of the expected format; only
/// `column` of its rows, if given.
pub(crate) fn stored(engine: &Engine, name: &str, expect: Expect, column: Option<&str>) -> Result<Vec<Split>> {
    let Some(cluster) = engine.cluster_client() else {
        return Err(Error::Config(format!(
            "{}{name}: stored datasets live on a cluster; set RINGLEADER_MASTER (see `ringleader put`)",
            ringleader_core::io::store::URL_SCHEME
        )));
    };
    let info = cluster.dataset(name)?;
    if let Expect::Format(format) = expect
        && info.format != format.name()
    {
        return Err(Error::Config(format!(
            "{}{name} holds {} rows, not {}; read it with a matching source (text_files, record_files, arrow_files)",
            ringleader_core::io::store::URL_SCHEME,
            info.format,
            format.name()
        )));
    }
    Ok(info
        .partitions
        .into_iter()
        .map(|p| Split::Stored {
            dataset: info.name.clone(),
            generation: info.generation.clone(),
            partition: p.partition,
            locations: p.addresses,
            column: column.map(str::to_string),
        })
        .collect())
}

/// Stores `request` (its name, partitions and replicas filled in here) as a temporary
/// dataset, removed when the engine is dropped; returns its name.
fn upload(
    engine: &Engine,
    cluster: &Cluster,
    what: &str,
    total: u64,
    mut request: crate::transfer::PutRequest,
) -> Result<String> {
    let (workers, slots) = cluster.live_workers()?;
    let name = engine.temporary_name();
    if cluster.progress() {
        eprintln!(
            "uploading {what}: {total} bytes as {}{name}",
            ringleader_core::io::store::URL_SCHEME
        );
    }
    engine.note_upload(name.clone());
    request.name = name.clone();
    request.partitions = (total.div_ceil(engine.config().split_size.max(1)) as u32).max(slots);
    request.replicas = workers.clamp(1, 2);
    cluster.put(request)?;
    Ok(name)
}
