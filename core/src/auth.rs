//! The cluster token. Submitting a job means running its binary on the workers, so every
//! RPC between Ringleader processes carries a shared secret in its `authorization`
//! metadata, and every service refuses a call without it before doing anything.
//!
//! A process learns the token once: a node from `--token-file` ([`set_token`]), anything
//! else from `RINGLEADER_TOKEN` or the file named by `RINGLEADER_TOKEN_FILE`. Clients add it
//! with [`Authorize`] (wrap a channel with [`authorized`]); servers check it with
//! [`RequireToken`]. A node with no token accepts calls without one; nodes refuse to listen
//! beyond loopback without a token.

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

/// Refuses requests that do not carry `expected` (when there is one).
#[derive(Debug, Clone, Default)]
pub struct RequireToken {
    expected: Option<std::sync::Arc<str>>,
}

impl RequireToken {
    /// Checks for this process's token.
    pub fn from_process() -> Result<RequireToken, TokenError> {
        Ok(RequireToken {
            expected: token()?.map(std::sync::Arc::from),
        })
    }

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        self.expected.is_some()
    }

    /// Checks a request's metadata.
    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let given = metadata
            .get(METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "refused: this call carries no valid cluster token (set RINGLEADER_TOKEN, or RINGLEADER_TOKEN_FILE to the cluster's token file, e.g. ~/.ringleader/cluster/token)",
            ))
        }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata())?;
        Ok(request)
    }
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
    fn only_the_right_token_passes() {
        let require = RequireToken {
            expected: Some("s3cret".into()),
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
