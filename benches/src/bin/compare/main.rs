//! `compare`: the tables people choose keel's algorithms by.
//!
//! `cargo run --release -p keel-benches --bin compare -- <block> [options]`
//!
//! Each block adds one subcommand; run with no argument to list them.

mod breaker;
mod cache;
mod clock;
mod hashring;
mod idgen;
mod lock;
mod rate_limit;

use std::process::ExitCode;

/// One subcommand: its name, a line of help, and the function that prints its tables.
struct Subcommand {
    name: &'static str,
    about: &'static str,
    run: fn(&[String]) -> Result<(), String>,
}

const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "clock",
        about: "nanoseconds per reading of each clock source",
        run: clock::run,
    },
    Subcommand {
        name: "rate-limit",
        about: "limiter accuracy: admitted vs ideal, worst window, retry-after, per arrival pattern",
        run: rate_limit::run,
    },
    Subcommand {
        name: "hashring",
        about: "consistent hashing: ns/lookup, balance, keys moved, bytes per node",
        run: hashring::run,
    },
    Subcommand {
        name: "idgen",
        about: "ID generators: IDs/s on 1 and 2 threads, bits and text length, order, clock steps back",
        run: idgen::run,
    },
    Subcommand {
        name: "cache",
        about: "miss ratio per cache policy on synthetic workloads and --trace files",
        run: cache::run,
    },
    Subcommand {
        name: "lock",
        about: "leases under contention (grants/s, waits, fairness) and stale writes caught by the fence",
        run: lock::run,
    },
    Subcommand {
        name: "breaker",
        about: "retry storm simulation: calls sent and recovery time per retry strategy",
        run: breaker::run,
    },
];

fn usage() -> String {
    let mut text = String::from(
        "usage: compare <subcommand> [options]\n       compare all   (runs every subcommand)\n\nsubcommands:\n",
    );
    for sub in SUBCOMMANDS {
        text.push_str(&format!("  {:<12} {}\n", sub.name, sub.about));
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprint!("{}", usage());
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let chosen: Vec<&Subcommand> = match name.as_str() {
        "all" => SUBCOMMANDS.iter().collect(),
        "help" | "-h" | "--help" => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        other => match SUBCOMMANDS.iter().find(|sub| sub.name == other) {
            Some(sub) => vec![sub],
            None => {
                eprint!("unknown subcommand `{other}`\n\n{}", usage());
                return ExitCode::FAILURE;
            }
        },
    };
    for sub in chosen {
        println!("## compare {}\n", sub.name);
        if let Err(message) = (sub.run)(rest) {
            eprintln!("compare {}: {message}", sub.name);
            return ExitCode::FAILURE;
        }
        println!();
    }
    ExitCode::SUCCESS
}
