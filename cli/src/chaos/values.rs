//! The values the clients write: each write stores a value of its own id, whose every line
//! names it, so a read tells which write it returned and whether it returned all of it.
//!
//! A `put` stores the lines `v<ID> <i>` (how many depends on the id); a job counts the words of
//! a text whose words are `j<ID>w<r>`, so its output lines are `j<ID>w<r>\t<count>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;

/// How many lines a put's value has, by id (between 10 and 309).
fn put_lines(id: u64) -> u64 {
    10 + id.wrapping_mul(7_919) % 300
}

/// How many distinct words a job's input has, by id (between 3 and 22).
fn job_words(id: u64) -> u64 {
    3 + id.wrapping_mul(104_729) % 20
}

/// Every value written so far, by id: its lines, sorted.
#[derive(Default)]
pub struct Values {
    expected: Mutex<HashMap<u64, Vec<String>>>,
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Exactly value `id`.
    Whole(u64),
    /// Something no write stored whole: a part of one, several mixed, or nothing.
    Broken(String),
}

impl Values {
    /// Writes value `id`'s input files for `put` under `dir` (1 to 3 files) and records what
    /// a read of it must return.
    pub fn put_input(&self, dir: &Path, id: u64) -> anyhow::Result<PathBuf> {
        let lines: Vec<String> = (0..put_lines(id)).map(|i| format!("v{id} {i}")).collect();
        let input = dir.join(format!("v{id}"));
        std::fs::create_dir_all(&input).with_context(|| format!("creating {}", input.display()))?;
        let files = 1 + id % 3;
        for (f, chunk) in lines.chunks(lines.len().div_ceil(files as usize)).enumerate() {
            let path = input.join(format!("part-{f}.txt"));
            std::fs::write(&path, chunk.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
        self.expect(id, lines);
        Ok(input)
    }

    /// Writes value `id`'s input text for a word-count job under `dir` and records the counts
    /// a read of its output must return.
    pub fn job_input(&self, dir: &Path, id: u64) -> anyhow::Result<PathBuf> {
        let words = job_words(id);
        let mut counts = vec![0u64; words as usize];
        let mut text = String::new();
        for line in 0..words * 3 {
            for w in 0..=(line % words) {
                text.push_str(&format!("j{id}w{w} "));
                counts[w as usize] += 1;
            }
            text.push('\n');
        }
        let input = dir.join(format!("j{id}"));
        std::fs::create_dir_all(&input).with_context(|| format!("creating {}", input.display()))?;
        let path = input.join("words.txt");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let lines = counts
            .iter()
            .enumerate()
            .map(|(w, c)| format!("j{id}w{w}\t{c}"))
            .collect();
        self.expect(id, lines);
        Ok(input)
    }

    fn expect(&self, id: u64, mut lines: Vec<String>) {
        lines.sort();
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, lines);
    }

    /// Which value the `part-*` files under `dir` (a `get`'s output) are.
    pub fn decode(&self, dir: &Path) -> anyhow::Result<Decoded> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
            {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                lines.extend(text.lines().map(str::to_string));
            }
        }
        lines.sort();
        Ok(self.identify(&lines))
    }

    /// Which value `lines` (sorted) are.
    pub fn identify(&self, lines: &[String]) -> Decoded {
        let Some(first) = lines.first() else {
            return Decoded::Broken("no lines at all".into());
        };
        let Some(id) = value_id(first) else {
            return Decoded::Broken(format!("a line no write stored: {first:?}"));
        };
        let expected = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        let Some(whole) = expected.get(&id) else {
            return Decoded::Broken(format!("lines of value {id}, which nobody wrote"));
        };
        if whole.as_slice() == lines {
            return Decoded::Whole(id);
        }
        let missing = whole.iter().filter(|l| lines.binary_search(l).is_err()).count();
        let foreign = lines.iter().filter(|l| whole.binary_search(l).is_err()).count();
        Decoded::Broken(format!(
            "value {id} not whole: {} lines read, {} expected, {missing} missing, {foreign} not its own",
            lines.len(),
            whole.len()
        ))
    }
}

/// The id in a value's line (`v12 3`, `j12w0\t4`).
fn value_id(line: &str) -> Option<u64> {
    let rest = line.strip_prefix('v').or_else(|| line.strip_prefix('j'))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_under(dir: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).expect("test") {
            lines.extend(
                std::fs::read_to_string(entry.expect("test").path())
                    .expect("test")
                    .lines()
                    .map(str::to_string),
            );
        }
        lines.sort();
        lines
    }

    #[test]
    fn a_put_value_reads_back_as_itself_and_a_part_of_it_does_not() {
        let dir = tempfile::tempdir().expect("test");
        let values = Values::default();
        let input = values.put_input(dir.path(), 7).expect("test");
        let lines = lines_under(&input);
        assert_eq!(lines.len() as u64, put_lines(7));
        assert_eq!(values.identify(&lines), Decoded::Whole(7));
        assert!(matches!(values.identify(&lines[1..]), Decoded::Broken(_)));
        // Mixed with another value's lines.
        let other = values.put_input(dir.path(), 8).expect("test");
        let mut mixed = lines.clone();
        mixed.extend(lines_under(&other).into_iter().take(1));
        mixed.sort();
        assert!(matches!(values.identify(&mixed), Decoded::Broken(_)));
        assert!(matches!(values.identify(&[]), Decoded::Broken(_)));
    }

    #[test]
    fn a_job_value_is_the_word_count_of_its_input() {
        let dir = tempfile::tempdir().expect("test");
        let values = Values::default();
        let input = values.job_input(dir.path(), 3).expect("test");
        // Count the words the plain way: the oracle for the job.
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for line in lines_under(&input) {
            for word in line.split_whitespace() {
                *counts.entry(word.to_string()).or_default() += 1;
            }
        }
        let mut output: Vec<String> = counts.iter().map(|(w, c)| format!("{w}\t{c}")).collect();
        output.sort();
        assert_eq!(values.identify(&output), Decoded::Whole(3));
    }
}
