//! The cluster token. Submitting a job means running its binary on the workers, so every
//! RPC between Ringleader processes carries a shared secret in its `authorization`
//! metadata, and every service refuses a call without it before doing anything.
//!
//! A process learns the token once: a node from `--token-file` ([`set_token`]), anything
//! else from `RINGLEADER_TOKEN` or the file named by `RINGLEADER_TOKEN_FILE`. Clients add it
//! with [`Authorize`] (wrap a channel with [`authorized`]); servers check it with
//! [`RequireToken`]. A node with no token accepts calls without one; nodes refuse to listen
//! beyond loopback without a token.
//!
//! A job's executors never see the cluster token: their worker gives them a *job
//! credential* ([`job_credential`]), `job.<JOB>.<HMAC-SHA256 of the job id under the
//! token>`, which any node holding the token can check without asking anyone. Services an
//! executor has no business calling (driver, worker, Raft) refuse it outright; those it
//! needs (its worker's task queue, Flight) admit it ([`RequireToken::admitting_jobs`]) and
//! check per call that it acts for its own job ([`Caller::may_act_for`]).

use std::path::Path;
use std::sync::OnceLock;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Environment variable holding the token itself.
pub const TOKEN_ENV: &str = "RINGLEADER_TOKEN";
/// Environment variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "RINGLEADER_TOKEN_FILE";
/// The metadata key the token travels in (as `Bearer <token>`).
pub const METADATA_KEY: &str = "authorization";
/// How a job credential starts.
const JOB_PREFIX: &str = "job.";

static TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// Why a token cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read the cluster token from {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty or not printable ASCII.
    #[error(
        "the cluster token in {0} is empty or not printable ASCII (expected one line, like `ringleader cluster up` writes)"
    )]
    Malformed(String),
}

/// Reads a token file (one line; surrounding whitespace ignored).
pub fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Malformed(path.display().to_string()));
    }
    Ok(token.to_string())
}

/// A new random token (32 bytes from the kernel, in hex).
pub fn generate() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Sets this process's token (a node, from its `--token-file`); first call wins.
pub fn set_token(token: Option<String>) {
    let _ = TOKEN.set(token);
}

/// This process's token: the one set, else `RINGLEADER_TOKEN`, else the file named by
/// `RINGLEADER_TOKEN_FILE` (read once), else none.
pub fn token() -> Result<Option<&'static str>, TokenError> {
    if let Some(token) = TOKEN.get() {
        return Ok(token.as_deref());
    }
    let found = match (std::env::var(TOKEN_ENV), std::env::var_os(TOKEN_FILE_ENV)) {
        (Ok(t), _) if !t.trim().is_empty() => Some(t.trim().to_string()),
        (_, Some(path)) if !path.is_empty() => Some(read_token_file(Path::new(&path))?),
        _ => None,
    };
    Ok(TOKEN.get_or_init(|| found).as_deref())
}

/// Adds this process's token to every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Authorize;

impl Interceptor for Authorize {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = token().map_err(|e| Status::unauthenticated(e.to_string()))?
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            request.metadata_mut().insert(METADATA_KEY, value);
        }
        Ok(request)
    }
}

/// Adds this process's token to `metadata` (for clients built without an interceptor,
/// such as Arrow Flight's).
pub fn add_token(metadata: &mut tonic::metadata::MetadataMap) -> Result<(), TokenError> {
    if let Some(token) = token()?
        && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
    {
        metadata.insert(METADATA_KEY, value);
    }
    Ok(())
}

/// A channel whose requests carry the token.
pub type AuthChannel = InterceptedService<Channel, Authorize>;

/// Wraps `channel` so its requests carry the token.
pub fn authorized(channel: Channel) -> AuthChannel {
    InterceptedService::new(channel, Authorize)
}

/// Who made a call, as its credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A holder of the cluster token (a driver, a worker, a client), or anyone on a
    /// cluster without a token.
    Cluster,
    /// An executor of this job, holding that job's credential.
    Job(String),
}

impl Caller {
    /// The caller of `request`, as its service's [`RequireToken`] found it (a service
    /// without one has no token to check: [`Caller::Cluster`]).
    pub fn of<T>(request: &Request<T>) -> Caller {
        request.extensions().get::<Caller>().cloned().unwrap_or(Caller::Cluster)
    }

    /// Refuses a job's executor acting for another job.
    pub fn may_act_for(&self, job: &str) -> Result<(), Status> {
        match self {
            Caller::Job(own) if own != job => Err(Status::permission_denied(format!(
                "refused: this credential belongs to job {own}'s executors, which may not act for job {job}"
            ))),
            _ => Ok(()),
        }
    }
}

/// The credential a worker gives the executors of `job`: `job.<JOB>.<hex HMAC>` under
/// this process's token, or none on a cluster without a token.
pub fn job_credential(job: &str) -> Result<Option<String>, TokenError> {
    Ok(token()?.map(|token| credential_for(token, job)))
}

/// The credential of `job` under `token`.
pub fn credential_for(token: &str, job: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let tag = ring::hmac::sign(&key, job.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{JOB_PREFIX}{job}.{hex}")
}

/// The job whose credential `given` is under `token`, if it is one.
fn credential_job<'a>(token: &str, given: &'a str) -> Option<&'a str> {
    let (job, hex) = given.strip_prefix(JOB_PREFIX)?.rsplit_once('.')?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let tag: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    ring::hmac::verify(&key, job.as_bytes(), &tag).ok().map(|()| job)
}

/// Refuses requests that do not carry `expected` (when there is one), and job credentials
/// unless built with [`RequireToken::admitting_jobs`].
#[derive(Debug, Clone, Default)]
pub struct RequireToken {
    expected: Option<std::sync::Arc<str>>,
    admit_jobs: bool,
}

impl RequireToken {
    /// Checks for this process's token.
    pub fn from_process() -> Result<RequireToken, TokenError> {
        Ok(RequireToken {
            expected: token()?.map(std::sync::Arc::from),
            admit_jobs: false,
        })
    }

    /// The same check that also admits a job's executors (the service checks per call
    /// what they act for, with [`Caller::of`]).
    pub fn admitting_jobs(&self) -> RequireToken {
        RequireToken {
            admit_jobs: true,
            ..self.clone()
        }
    }

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        self.expected.is_some()
    }

    /// Checks a request's metadata: who calls, or why it is refused.
    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, Status> {
        let Some(expected) = &self.expected else {
            return Ok(Caller::Cluster);
        };
        let given = metadata
            .get(METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Ok(Caller::Cluster);
        }
        match credential_job(expected, given) {
            Some(job) if self.admit_jobs => Ok(Caller::Job(job.to_string())),
            Some(job) => Err(Status::permission_denied(format!(
                "refused: a credential of job {job}'s executors may not call this service (it takes the cluster token)"
            ))),
            None => Err(Status::unauthenticated(
                "refused: this call carries no valid cluster token (set RINGLEADER_TOKEN, or RINGLEADER_TOKEN_FILE to the cluster's token file, e.g. ~/.ringleader/cluster/token)",
            )),
        }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.check(request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The value of a status page's session cookie under `token`: an HMAC of its own purpose
/// label, so the cookie a browser keeps (and may send to any service on the host) is not the
/// cluster token, and opens nothing but the pages.
pub fn web_session_for(token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let tag = ring::hmac::sign(&key, WEB_SESSION_PURPOSE.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The request header carrying a store grant on a Flight `do_put`.
pub const STORE_GRANT_HEADER: &str = "x-ringleader-store-grant";

/// What lets the executors of `job` store partitions of `output` (`DATASET/GENERATION`, the
/// output its plan names) on other workers: an HMAC under the cluster token with a purpose
/// label of its own, so it grants that one generation to that one job and nothing else.
pub fn store_grant_for(token: &str, job: &str, output: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let signed = format!("{STORE_GRANT_PURPOSE}\0{job}\0{output}");
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a store grant's HMAC signs first.
const STORE_GRANT_PURPOSE: &str = "ringleader store grant v1";

impl Caller {
    /// Whether this caller may store a partition of `output` (`DATASET/GENERATION`): the
    /// cluster may; a job's executor only with the grant of its job for that output.
    pub fn may_store(&self, output: &str, grant: Option<&str>) -> Result<(), Status> {
        let Caller::Job(job) = self else {
            return Ok(());
        };
        let granted = match (token(), grant) {
            (Ok(Some(token)), Some(grant)) => secrets_equal(&store_grant_for(token, job, output), grant),
            _ => false,
        };
        if granted {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "refused: job {job}'s executors may store only the dataset their job writes, not {output}"
            )))
        }
    }
}

/// What a web session's HMAC signs: nothing else signs it.
const WEB_SESSION_PURPOSE: &str = "ringleader status page session v1";

/// Whether two secrets are equal, compared without an early exit (the time taken says
/// nothing about how much of a guess was right).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_session_is_not_the_token_nor_a_job_credential_and_depends_on_the_token() {
        let session = web_session_for("t0k");
        assert_ne!(session, "t0k");
        assert!(!session.contains("t0k"));
        assert_eq!(session.len(), 64);
        assert_eq!(session, web_session_for("t0k"));
        assert_ne!(session, web_session_for("t0k2"));
        assert!(credential_job("t0k", &session).is_none());
        assert!(secrets_equal(&session, &web_session_for("t0k")));
        assert!(!secrets_equal(&session, &session[1..]));
    }

    #[test]
    fn only_the_right_token_passes() {
        let require = RequireToken {
            expected: Some("s3cret".into()),
            admit_jobs: false,
        };
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert!(require.check(&metadata).is_err(), "no token");
        metadata.insert(METADATA_KEY, MetadataValue::from_static("Bearer wrong!"));
        assert!(require.check(&metadata).is_err(), "a wrong token");
        metadata.insert(METADATA_KEY, MetadataValue::from_static("Bearer s3cret"));
        assert!(require.check(&metadata).is_ok());
        assert!(
            RequireToken::default()
                .check(&tonic::metadata::MetadataMap::new())
                .is_ok()
        );
    }

    #[test]
    fn job_credentials_name_their_job_and_only_admitting_services_take_them() {
        let strict = RequireToken {
            expected: Some("s3cret".into()),
            admit_jobs: false,
        };
        let admitting = strict.admitting_jobs();
        let check = |require: &RequireToken, credential: &str| {
            let mut metadata = tonic::metadata::MetadataMap::new();
            let value = MetadataValue::try_from(format!("Bearer {credential}")).expect("ascii");
            metadata.insert(METADATA_KEY, value);
            require.check(&metadata).map_err(|status| status.code())
        };
        let own = credential_for("s3cret", "job-7.a");
        assert_eq!(check(&admitting, &own), Ok(Caller::Job("job-7.a".into())));
        assert_eq!(check(&strict, &own), Err(tonic::Code::PermissionDenied));
        // Minted under another token, or edited to name another job: no credential at all.
        let foreign = credential_for("other", "job-7.a");
        assert_eq!(check(&admitting, &foreign), Err(tonic::Code::Unauthenticated));
        let edited = own.replace("job-7.a", "job-8.a");
        assert_eq!(check(&admitting, &edited), Err(tonic::Code::Unauthenticated));
        assert!(check(&admitting, "job.x.zz").is_err());
        assert!(check(&admitting, "job.").is_err());
        // A job's caller acts for its job only; the cluster acts for any.
        let act = |caller: Caller, job: &str| caller.may_act_for(job).map_err(|status| status.code());
        assert_eq!(act(Caller::Job("a".into()), "a"), Ok(()));
        assert_eq!(act(Caller::Job("a".into()), "b"), Err(tonic::Code::PermissionDenied));
        assert_eq!(act(Caller::Cluster, "b"), Ok(()));
    }

    #[test]
    fn token_files_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").expect("write");
        assert_eq!(read_token_file(&path).expect("valid"), "abc123");
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(read_token_file(&path), Err(TokenError::Malformed(_))));
        assert!(matches!(
            read_token_file(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
        assert_eq!(generate().expect("urandom").len(), 64);
    }
}
