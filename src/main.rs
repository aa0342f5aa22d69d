//! The `ringleader` command: dataset generators, validation and benchmarks.

fn main() -> std::process::ExitCode {
    ringleader::cli::main()
}
