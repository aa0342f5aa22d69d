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
    /// Sum it this many times, one job each, and print the time of each job after the first
    /// from submission to result (`job 3: 4.10 ms`): what a program of many small jobs waits.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let column = ctx.arrow_column(&args.input, args.column.as_deref())?;
        let mut total = column.sum()?;
        for job in 2..=args.repeat {
            let started = std::time::Instant::now();
            total = column.sum()?;
            println!("job {job}: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
        }
        println!("{total}");
        Ok(())
    })
}
