//! The `xtask` binary (`cargo xtask`, an alias in `.cargo/config.toml`): parses the command line
//! ([`flags`]) and runs the command. Everything else is in the library (`lib.rs`).

mod flags;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use xshell::Shell;

use flags::{Cli, Cmd};

fn main() -> ExitCode {
    // Hidden: `xtask __parse ARGS…` only parses ARGS as `cargo xtask ARGS…` and runs nothing
    // (the README test checks every command line it shows this way).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "__parse") {
        let argv = std::iter::once("cargo xtask".into()).chain(args[2..].iter().cloned());
        return match Cli::try_parse_from(argv) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                let _ = err.print();
                if err.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
            }
        };
    }
    let cli = Cli::parse();
    let result = Shell::new().context("cannot create a shell").and_then(|sh| {
        sh.change_dir(xtask::project_root());
        run(cli.cmd, &sh)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd, sh: &Shell) -> Result<()> {
    match cmd {
        Cmd::Local(cmd) => cmd.run(sh),
        Cmd::Test(cmd) => cmd.run(sh),
        Cmd::Image(cmd) => cmd.run(sh),
        Cmd::Scan(cmd) => cmd.run(sh),
        Cmd::Push(cmd) => cmd.run(sh),
        Cmd::Sign(cmd) => cmd.run(sh),
        Cmd::Deploy(cmd) => cmd.run(sh),
        Cmd::Rollback(cmd) => cmd.run(sh),
        Cmd::Itest(cmd) => cmd.run(sh),
        Cmd::Pipeline(cmd) => cmd.run(sh),
        Cmd::IamPolicy(cmd) => cmd.run(sh),
    }
}
