//! gpu-doctor's entry point: parse the command line, run, exit with the documented code.

use clap::Parser;
use gpu_doctor::{app, cli::Cli};

fn main() {
    // clap exits with 2 on a bad flag and 0 for --help/--version, as docs/exit-codes.md says.
    let cli = Cli::parse();
    std::process::exit(app::run(cli));
}
