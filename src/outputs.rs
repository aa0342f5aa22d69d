//! Where a job's rows go, decided here and nowhere else: a local directory the workers can
//! see (committed all at once), a stored dataset on the cluster (`ringleader://NAME`,
//! placed by the driver first and committed with the job's success), or, when the workers
//! are on other machines than this client, a temporary stored dataset streamed back into
//! the local directory (and rewritten as Parquet here, for a Parquet output). A
//! [`crate::Dataset`] only says what writes its rows ([`Writers`]) and how to plan a job for
//! a final output.

use std::path::{Path, PathBuf};

use ringleader_core::data::Data;
use ringleader_core::ids::Attempt;
use ringleader_core::io::output::OutputCommit;
use ringleader_core::io::output_format::OutputFormat;
use ringleader_core::io::store::{DatasetFormat, StoreSpec};
use ringleader_core::ops::action;
use ringleader_core::plan::shipped::Shipped;
use ringleader_core::plan::{ActionFn, JobPlan, StageOutput, TaskValue};
use ringleader_core::ship;

use crate::Result;
use crate::engine::Engine;

/// Where a save action writes, and whether it may replace what is there: a local
/// directory, or `ringleader://NAME`, a dataset stored on the cluster's workers.
#[derive(Debug, Clone)]
pub struct Output {
    pub(crate) dir: PathBuf,
    pub(crate) overwrite: bool,
    pub(crate) replicas: Option<u32>,
}

impl Output {
    /// Output into `dir` (a directory, or `ringleader://NAME`), which must not exist yet.
    pub fn new(dir: impl AsRef<Path>) -> Output {
        Output {
            dir: dir.as_ref().to_path_buf(),
            overwrite: false,
            replicas: None,
        }
    }

    /// Allows replacing an existing `dir` (only once the new output is complete).
    pub fn overwrite(mut self, yes: bool) -> Output {
        self.overwrite = yes;
        self
    }

    /// Copies of each partition of a stored dataset (`ringleader://NAME`); default
    /// [`crate::Config::replicas`].
    pub fn replicas(mut self, n: u32) -> Output {
        self.replicas = Some(n.max(1));
        self
    }
}

impl From<&str> for Output {
    fn from(s: &str) -> Output {
        Output::new(s)
    }
}
impl From<String> for Output {
    fn from(s: String) -> Output {
        Output::new(s)
    }
}
impl From<&Path> for Output {
    fn from(p: &Path) -> Output {
        Output::new(p)
    }
}
impl From<PathBuf> for Output {
    fn from(p: PathBuf) -> Output {
        Output::new(p)
    }
}
impl From<&PathBuf> for Output {
    fn from(p: &PathBuf) -> Output {
        Output::new(p)
    }
}

/// What a save action wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// Part files (or stored partitions) written.
    pub files: usize,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Saved {
    /// Adds up what the final tasks wrote.
    pub(crate) fn of(values: &[TaskValue]) -> Saved {
        let mut saved = Saved {
            files: 0,
            rows: 0,
            bytes: 0,
        };
        for v in values {
            if let TaskValue::Written { rows, bytes } | TaskValue::Stored { rows, bytes, .. } = v {
                saved.files += 1;
                saved.rows += rows;
                saved.bytes += bytes;
            }
        }
        saved
    }
}

/// What writes a dataset's rows, for each place they may go.
pub(crate) struct Writers {
    /// The final action writing part files into a local (staging) directory.
    pub(crate) to_files: Shipped<ActionFn>,
    /// Its state, made from the staging directory.
    pub(crate) files_state: Box<dyn FnOnce(PathBuf) -> Result<Vec<u8>>>,
    /// The final action writing a stored dataset's partitions.
    pub(crate) to_store: Shipped<ActionFn>,
    /// What the stored rows are.
    pub(crate) format: DatasetFormat,
    /// Parquet files: a stored dataset holds Arrow instead (refused), and a travelling
    /// output comes back as Arrow and is rewritten as Parquet here.
    pub(crate) parquet: bool,
}

/// Plans the job of a save for a final output (the dataset's lineage, its caches computed).
pub(crate) type PlanFor<'a> = &'a dyn Fn(StageOutput) -> Result<JobPlan>;

/// Where an output goes.
enum Destination {
    /// A local directory the workers see as this client does.
    Files,
    /// The stored dataset of that name.
    Stored(String),
    /// A local directory the workers cannot see: through a temporary stored dataset.
    Travelling,
}

/// Where `output` goes on `engine`.
fn destination(engine: &Engine, output: &Output) -> Result<Destination> {
    if let Some(name) = ringleader_core::io::store::parse_url(&output.dir) {
        return Ok(Destination::Stored(name?));
    }
    Ok(if engine.workers_see_local_files()? {
        Destination::Files
    } else {
        Destination::Travelling
    })
}

/// Runs a save of the job `plan` makes into `output`, with `writers`.
pub(crate) fn save(engine: &Engine, plan: PlanFor<'_>, output: Output, writers: Writers) -> Result<Saved> {
    match destination(engine, &output)? {
        Destination::Stored(_) if writers.parquet => Err(crate::Error::Config(format!(
            "{}: stored datasets hold Arrow; use save_arrow for ringleader://, or save Parquet into a directory",
            output.dir.display()
        ))),
        Destination::Stored(name) => save_stored(engine, plan, &name, &output, writers.to_store, writers.format),
        Destination::Travelling if writers.parquet => save_parquet_travelling(engine, plan, output, writers.to_store),
        Destination::Travelling => save_travelling(engine, plan, output, writers.to_store, writers.format),
        Destination::Files => {
            let commit = OutputCommit::begin(&output.dir, output.overwrite)?;
            let state = (writers.files_state)(commit.staging().to_path_buf())?;
            let values = engine.execute(&plan(StageOutput::Action {
                f: writers.to_files,
                state,
            })?)?;
            commit.commit()?;
            Ok(Saved::of(&values))
        }
    }
}

/// Into the stored dataset `name` (`output`'s replicas and overwrite).
fn save_stored(
    engine: &Engine,
    plan: PlanFor<'_>,
    name: &str,
    output: &Output,
    to_store: Shipped<ActionFn>,
    format: DatasetFormat,
) -> Result<Saved> {
    if engine.cluster_client().is_none() {
        return Err(crate::Error::Config(format!(
            "{}: stored datasets live on a cluster; set RINGLEADER_MASTER, or write to a local directory",
            output.dir.display()
        )));
    }
    let replicas = output.replicas.unwrap_or(engine.config().replicas);
    let values = store_plan(
        engine,
        plan(no_output())?,
        name,
        replicas,
        output.overwrite,
        to_store,
        format,
    )?;
    Ok(Saved::of(&values))
}

/// Into a local directory the workers cannot see: a temporary stored dataset of one copy,
/// streamed back into `output` and removed whatever happened.
fn save_travelling(
    engine: &Engine,
    plan: PlanFor<'_>,
    output: Output,
    to_store: Shipped<ActionFn>,
    format: DatasetFormat,
) -> Result<Saved> {
    // Refuse an existing directory before any task runs.
    if output.dir.exists() && !output.overwrite {
        return Err(crate::Error::OutputExists(output.dir.clone()));
    }
    let Some(cluster) = engine.cluster_client() else {
        return Err(crate::Error::Config("no cluster".into()));
    };
    let name = engine.temporary_name();
    let temporary = Output::new(format!("{}{name}", ringleader_core::io::store::URL_SCHEME)).replicas(1);
    let saved = save_stored(engine, plan, &name, &temporary, to_store, format);
    let fetched = saved.and_then(|saved| {
        if cluster.progress() {
            eprintln!(
                "the workers are on other machines: fetching {} bytes into {}",
                saved.bytes,
                output.dir.display()
            );
        }
        let (rows, bytes) = cluster.get(crate::transfer::GetRequest {
            name: name.clone(),
            dir: output.dir.clone(),
            overwrite: output.overwrite,
            progress: cluster.progress(),
        })?;
        Ok(Saved {
            files: saved.files,
            rows,
            bytes,
        })
    });
    // The temporary dataset goes whatever happened (a failed job's was never listed).
    let _ = cluster.remove_dataset(&name);
    fetched
}

/// Parquet into a local directory the workers cannot see: they store an Arrow dataset,
/// which comes back into a staging directory and is rewritten as Parquet here.
fn save_parquet_travelling(
    engine: &Engine,
    plan: PlanFor<'_>,
    output: Output,
    to_store: Shipped<ActionFn>,
) -> Result<Saved> {
    let commit = OutputCommit::begin(&output.dir, output.overwrite)?;
    let fetched = commit.staging().join(".arrow");
    let saved = save_travelling(engine, plan, Output::new(&fetched), to_store, DatasetFormat::Arrow)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(&fetched).map_err(|e| crate::Error::io(&fetched, e))? {
        let arrow = entry.map_err(|e| crate::Error::io(&fetched, e))?.path();
        let Some(stem) = arrow
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| s.starts_with("part-"))
        else {
            continue;
        };
        bytes += rewrite_as_parquet(&arrow, commit.staging(), &format!("{stem}.parquet"))?;
    }
    std::fs::remove_dir_all(&fetched).map_err(|e| crate::Error::io(&fetched, e))?;
    commit.commit()?;
    Ok(Saved { bytes, ..saved })
}

/// Writes the Arrow IPC file `arrow` as the Parquet file `name` in `dir`: its bytes.
fn rewrite_as_parquet(arrow: &Path, dir: &Path, name: &str) -> Result<u64> {
    let path = dir.join(name);
    let file = std::fs::File::open(arrow).map_err(|e| crate::Error::io(arrow, e))?;
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
        .map_err(|e| crate::Error::io(arrow, std::io::Error::other(e.to_string())))?;
    let schema = reader.schema();
    ringleader_core::io::output::write_file(dir, name, Attempt(0), |out| {
        OutputFormat::Parquet.write(&path, out, schema, reader.map(|b| b.map_err(crate::Error::from)))?;
        std::io::Write::flush(out).map_err(|e| crate::Error::io(&path, e))?;
        out.get_ref()
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .map_err(|e| crate::Error::io(&path, e))
    })
}

/// A placeholder for the final stage's output, set by [`store_plan`].
pub(crate) fn no_output() -> StageOutput {
    StageOutput::Action {
        f: ship!(action::count as ActionFn),
        state: Vec::new(),
    }
}

/// Runs `plan` on the cluster, its final stage writing the stored dataset `name` with
/// `to_store` (`replicas` copies of each partition, placed by the driver first; replacing
/// an existing dataset of that name only with `overwrite`).
pub(crate) fn store_plan(
    engine: &Engine,
    mut plan: ringleader_core::plan::JobPlan,
    name: &str,
    replicas: u32,
    overwrite: bool,
    to_store: Shipped<ActionFn>,
    format: DatasetFormat,
) -> Result<Vec<TaskValue>> {
    let Some(cluster) = engine.cluster_client() else {
        return Err(crate::Error::Config(format!(
            "{}{name}: stored datasets live on a cluster; set RINGLEADER_MASTER, or write to a local directory",
            ringleader_core::io::store::URL_SCHEME
        )));
    };
    let partitions = plan.stages.last().map_or(0, |s| s.tasks.len()) as u32;
    let info = cluster.place(name, partitions, replicas, overwrite)?;
    let spec = StoreSpec {
        dataset: name.to_string(),
        generation: info.generation,
        format,
        replicas,
        overwrite,
        owners: info.partitions.into_iter().map(|p| p.addresses).collect(),
    };
    if let Some(last) = plan.stages.last_mut() {
        last.output = StageOutput::Action {
            f: to_store,
            state: postcard::to_stdvec(&action::StoreState { spec: spec.clone() })?,
        };
    }
    plan.store = Some(spec);
    engine.execute(&plan)
}

/// The final stage's output of `collect`: every row, back to the client.
pub(crate) fn collect_output<T: Data>() -> StageOutput {
    StageOutput::Action {
        f: ship!(action::collect::<T> as ActionFn),
        state: Vec::new(),
    }
}
