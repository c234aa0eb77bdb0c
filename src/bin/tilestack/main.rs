//! The `tilestack` command line.
//!
//! `args` holds the clap definitions and the typed values parsed from them;
//! `cmd` one module per command. Log events (timings, `-v`) go to stderr
//! through `tracing`; a command's output is printed by the command.

mod args;
mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use args::{Cli, Cmd};
use clap::Parser;

/// One glibc malloc arena per core (glibc's default is eight per core).
/// Every thread that allocates gets an arena of its own up to that bound —
/// tokio's workers, the blocking threads that decode and fuse — and memory
/// freed in one arena is not reused by another, so a cold stack faulted in
/// ~15 % more fresh pages than it needed (68.8 k against 58.4 k page faults
/// in the Oakland cold stack; its CPU time 0.68 s against 0.63 s, as much as
/// 879d593's, which ran fewer threads). The same without code:
/// `GLIBC_TUNABLES=glibc.malloc.arena_max=N`, which overrides this.
#[allow(unsafe_code)] // mallopt, below
fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|t| t.to_string_lossy().contains("arena_max"))
        {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let n = i32::try_from(cores).unwrap_or(i32::MAX);
        // SAFETY: mallopt only sets a bound of glibc's allocator; it is
        // called first in `main`, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }
}

/// Log events to stderr: `RUST_LOG` when set, else the level `-v` asks for.
fn install_tracing(level: tracing::level_filters::LevelFilter) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(cli: Cli, started: Instant) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Demo(a) => cmd::demo::run(&a).await,
        Cmd::World(a) => cmd::world::world(&a),
        Cmd::Serve(a) => cmd::world::serve(&a).await,
        Cmd::Stack(a) => cmd::stack::run(&a).await,
        Cmd::Bench { stack, bench } => cmd::bench::run(started, &stack, &bench).await,
        Cmd::Plot(a) => cmd::plot::run(&a),
        Cmd::Search(a) => cmd::search::run(&a).await,
        Cmd::Materialize(a) => cmd::materialize::run(a).await,
        Cmd::Dataset(a) => cmd::dataset::run(a).await,
        Cmd::Info(a) => cmd::info::run(&a).await,
        Cmd::Read(a) => cmd::read::run(&a).await,
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    bound_malloc_arenas();
    let cli = Cli::parse();
    install_tracing(cli.log_level());
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line. The library keeps a parser's own
/// error as the cause, and some (TOML's) print several lines: the position,
/// the offending source line under a `N |` gutter, carets, the reason. Here
/// the gutter and carets go, the source line is quoted, and the rest are
/// joined with `": "`: `bad.toml: not a recipe: TOML parse error at line 2,
/// column 8: `seed = "x"`: invalid type: string "x", expected u64`.
fn one_line(text: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('|') {
            // a gutter line: `|`, `N | source`, `| ^^^^`
            Some((gutter, src)) if gutter.trim().chars().all(|c| c.is_ascii_digit()) => {
                let src = src.trim();
                let marks = src.chars().all(|c| matches!(c, '^' | '-' | '~' | ' '));
                if !gutter.trim().is_empty() && !src.is_empty() && !marks {
                    parts.push(format!("`{src}`"));
                }
            }
            _ => parts.push(line.to_string()),
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn errors_print_on_one_line() {
        assert_eq!(
            one_line("a.toml: bad: no such key"),
            "a.toml: bad: no such key"
        );
        let toml = "bad.toml: not a recipe: TOML parse error at line 2, column 8\n  |\n2 | seed = \"x\"\n  |        ^^^\ninvalid type: string \"x\", expected u64\n";
        assert_eq!(
            one_line(toml),
            "bad.toml: not a recipe: TOML parse error at line 2, column 8: `seed = \"x\"`: \
             invalid type: string \"x\", expected u64"
        );
        // a `|` that is no gutter stays
        assert_eq!(one_line("use a | b"), "use a | b");
    }
}
