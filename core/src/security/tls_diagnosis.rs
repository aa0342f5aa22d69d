//! Saying what to do when a call failed because the two ends disagree about TLS: a client
//! without `RINGLEADER_TLS_CA` talking to a TLS cluster, a client trusting another CA, a
//! server whose certificate expired, a TLS client talking to a plain-text cluster. The
//! transport's own error ("transport error") names none of these.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::security::tls::{CA_ENV, ca_path};

/// A failed call's message and the errors under it, as one line (each text once).
pub fn status_chain(status: &tonic::Status) -> String {
    let mut parts = vec![status.message().to_string()];
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// What to do about a failed call to `address` whose error chain is `chain`, when TLS is
/// the cause; `None` when nothing points at TLS. May probe `address` (for at most 2 s).
pub async fn tls_hint(address: &str, chain: &str) -> Option<String> {
    let lower = chain.to_lowercase();
    match ca_path() {
        Some(ca) => {
            let ca = ca.display();
            if lower.contains("unknownissuer") || lower.contains("unknown issuer") || lower.contains("badsignature") {
                return Some(format!(
                    "the driver at {address} presented a certificate not signed by the CA this client trusts \
                     ({CA_ENV}={ca}): set {CA_ENV} to the CA the cluster's certificates were signed with"
                ));
            }
            if lower.contains("expired") || lower.contains("notvalidyet") {
                return Some(format!(
                    "the driver at {address} presented a certificate that has expired (or is not valid yet): \
                     renew the cluster's certificates (--tls-cert), or check the clocks"
                ));
            }
            if lower.contains("notvalidforname") || lower.contains("not valid for name") {
                return Some(format!(
                    "the driver's certificate does not name {address}: give the cluster a certificate for \
                     that host name or address"
                ));
            }
            (speaks_plain_http2(address).await == Some(true)).then(|| {
                format!(
                    "the driver at {address} speaks plain HTTP/2, not TLS, but this client trusts {CA_ENV}={ca}: \
                     unset {CA_ENV} to use this cluster"
                )
            })
        }
        None => (speaks_plain_http2(address).await == Some(false)).then(|| {
            format!(
                "the driver at {address} does not speak plain HTTP/2: it probably speaks TLS. Set {CA_ENV} to \
                 the cluster's CA certificate (the --tls-ca file it was started with; `ringleader` commands \
                 given --dir find it themselves)"
            )
        }),
    }
}

/// Whether the server at `address` answers an HTTP/2 connection preface in plain text:
/// `Some(true)` if it sends HTTP/2 frames back, `Some(false)` if it answers otherwise or
/// closes the connection (a TLS server does either), `None` if it cannot be reached or
/// says nothing within a second.
pub async fn speaks_plain_http2(address: &str) -> Option<bool> {
    let wait = Duration::from_secs(1);
    let mut stream = tokio::time::timeout(wait, tokio::net::TcpStream::connect(address))
        .await
        .ok()?
        .ok()?;
    // The client preface, then an empty SETTINGS frame.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    if stream.write_all(preface).await.is_err() {
        return Some(false);
    }
    let mut head = [0u8; 9];
    match tokio::time::timeout(wait, stream.read(&mut head)).await {
        Err(_) => None,
        Ok(Err(_)) | Ok(Ok(0)) => Some(false),
        // A frame header: 3 bytes of length, then the type (4: SETTINGS).
        Ok(Ok(n)) => Some(n >= 4 && head[3] == 0x04),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_http2_server_is_told_from_one_that_is_not() {
        // A server answering like HTTP/2 (a SETTINGS frame), one closing at once, and none.
        let http2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (a, b) = (http2.local_addr().expect("addr"), closing.local_addr().expect("addr"));
        tokio::spawn(async move {
            let (mut s, _) = http2.accept().await.expect("accept");
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00").await;
        });
        tokio::spawn(async move {
            let (s, _) = closing.accept().await.expect("accept");
            drop(s);
        });
        assert_eq!(speaks_plain_http2(&a.to_string()).await, Some(true));
        assert_eq!(speaks_plain_http2(&b.to_string()).await, Some(false));
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        assert_eq!(speaks_plain_http2(&gone.to_string()).await, None);
    }

    #[test]
    fn the_chain_names_every_source_once() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let status = tonic::Status::from_error(Box::new(std::io::Error::other(inner)));
        assert_eq!(
            status_chain(&status)
                .matches("invalid peer certificate: UnknownIssuer")
                .count(),
            1,
            "{}",
            status_chain(&status)
        );
        let status = tonic::Status::from_error(Box::new(std::io::Error::other("certificate expired")));
        assert!(status_chain(&status).contains("certificate expired"));
    }
}
