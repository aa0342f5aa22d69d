//! Sums an int64 column of every Arrow IPC file (`*.arrow`) in a directory. The column is
//! memory-mapped and added with Arrow's kernel; overflow is an error, never a wrap. The
//! total is the last line of stdout.
//!
//! ```text
//! cargo run --release --example sum -- --input datasets/fixtures/numbers
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Sum an int64 column of Arrow IPC files.
#[derive(Parser)]
struct Args {
    /// An Arrow IPC file, a directory of `*.arrow` files, or ringleader://NAME.
    #[arg(long)]
    input: PathBuf,
    /// The column to sum (default: each file's first int64 column).
    #[arg(long)]
    column: Option<String>,
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let total = ctx.arrow_column(&args.input, args.column.as_deref())?.sum()?;
        println!("{total}");
        Ok(())
    })
}
