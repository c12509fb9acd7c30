//! The `incc` command line; each command is a file of `src/cli/`.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed pipe (`incc summary x.incep | head`) ends the process quietly, as it does for
    // every Unix filter, instead of making `println!` panic.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at startup, before any thread
    // exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
