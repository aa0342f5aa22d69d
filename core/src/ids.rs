//! The names that become directory names on workers (job ids, dataset names): what each
//! may be, checked wherever one arrives from outside.

/// Whether `name` is safe as one directory name: 1 to 64 letters, digits, `-` or `_`.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `id` is a job id (letters, digits, `-`, `_`; at most 64 bytes).
pub fn valid_job_id(id: &str) -> bool {
    safe_name(id)
}

/// Whether `name` can name a dataset (letters, digits, `-`, `_`; at most 64 bytes).
pub fn valid_dataset_name(name: &str) -> bool {
    safe_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_path_components() {
        assert!(valid_job_id("job-000001") && valid_dataset_name("counts_2"));
        for bad in ["", "..", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(!valid_job_id(bad) && !valid_dataset_name(bad), "{bad:?}");
        }
    }
}
