//! gpu-doctor's entry point: parse the command line, run, exit with the documented code.

use clap::{CommandFactory, FromArgMatches};
use gpu_doctor::probe::process;
use gpu_doctor::{app, cli::Cli, signals};

fn main() {
    // clap exits with 2 on a bad flag and 0 for --help/--version, as docs/exit-codes.md says.
    let matches = Cli::command().try_get_matches().and_then(|m| {
        let cli = Cli::from_arg_matches(&m)?;
        Ok((m, cli))
    });
    let (matches, cli) = matches.unwrap_or_else(|e| {
        // A flag's environment variable that is not UTF-8: name it (clap does not).
        let variable = (e.kind() == clap::error::ErrorKind::InvalidUtf8)
            .then(gpu_doctor::cli::unreadable_flag_variable)
            .flatten();
        match variable {
            Some(why) => {
                eprintln!("gpu-doctor: {why}");
                std::process::exit(app::EXIT_NO_VERDICT)
            }
            None => e.exit(),
        }
    });
    // An option the subcommand would ignore is bad input, said as such (docs/exit-codes.md).
    if let Some(why) = gpu_doctor::cli::unused_option(&matches) {
        eprintln!("gpu-doctor: error: {why}");
        std::process::exit(app::EXIT_NO_VERDICT)
    }
    // On SIGINT/SIGTERM: end the child processes, remove temporary files, exit 130/143.
    if let Err(e) = signals::install() {
        eprintln!("gpu-doctor: warning: cannot handle interrupts ({e}); Ctrl-C may leave child processes running");
    }
    // Daemons that programs the doctor starts leave behind come back to it, to be ended.
    process::start_adopting();
    let code = app::run(cli);
    // A probe stopped at its deadline leaves its thread, and maybe its child, behind.
    process::end_all_children();
    std::process::exit(code);
}
