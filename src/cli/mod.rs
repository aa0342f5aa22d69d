//! The `ringleader` command.

/// Entry point of the `ringleader` binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
