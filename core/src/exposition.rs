//! Prometheus' text exposition format (0.0.4), as the drivers' and workers' `/metrics`
//! write it, and the bearer-token check those endpoints share.

use std::fmt::Write as _;

/// One metric family being written.
pub struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    /// Starts family `name` of `kind` (gauge, counter, summary) with its help line.
    pub fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    /// A family of one sample, `name{labels} value`.
    pub fn single(out: &mut String, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        Family::start(out, name, kind, help).sample(name, labels, value);
    }

    /// Adds a sample of `name` (the family's, or a summary's `_count` / `_sum`) with
    /// `labels` (escaped here).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.out, "{name}{labels} {value}");
        self
    }
}

/// Whether an `Authorization` header value carries `token` as a bearer token (how a
/// scraper such as Prometheus authenticates).
pub fn is_bearer(authorization: Option<&str>, token: &str) -> bool {
    authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| crate::security::auth::secrets_equal(given, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_have_escaped_labels() {
        let mut out = String::new();
        Family::start(&mut out, "m", "gauge", "help")
            .sample("m", &[("worker", "a\"b")], 1.0)
            .sample("m", &[], 2.5);
        assert_eq!(out, "# HELP m help\n# TYPE m gauge\nm{worker=\"a\\\"b\"} 1\nm 2.5\n");
    }

    #[test]
    fn only_the_token_as_a_bearer_token_passes() {
        assert!(is_bearer(Some("Bearer t0k"), "t0k"));
        assert!(!is_bearer(Some("Bearer t0"), "t0k"));
        assert!(!is_bearer(Some("t0k"), "t0k"));
        assert!(!is_bearer(None, "t0k"));
    }
}
