//! `compare cache`: miss ratios of keel's caches beside moka, quick_cache and lru.
//!
//! `compare cache [--requests N] [--trace PATH]... [--size N]... [--seed N] [--cpus N] [--policy NAME]...`:
//! the built-in synthetic workloads, then every trace given (one integer key per line, gzip
//! or plain), each at 1%, 5% and 10% of its distinct keys and at every `--size` given (e.g.
//! 2000 and 10000 for arc-oltp, the sizes published comparisons use). Every cache hashes
//! with a hasher seeded by `--seed` (default [`DEFAULT_SEED`]), so two runs print the same
//! table. keel `Cache` picks its shard count by the CPU count, so its big rows differ between
//! machines; `--cpus N` replays it with the shards it picks on N CPUs. `--policy`
//! (repeatable) replays only the named policies; `--no-synthetic` skips the built-in
//! workloads.

use std::path::PathBuf;

use keel_benches::cache::{DEFAULT_SEED, POLICIES, Workload, miss_ratio, read_trace, synthetic};

const USAGE: &str = "usage: compare cache [--requests N] [--trace PATH]... [--size N]... \
                     [--seed N] [--cpus N] [--policy NAME]... [--no-synthetic]";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut traces = Vec::new();
    let mut requests = 300_000usize;
    let mut sizes = Vec::new();
    let mut seed = DEFAULT_SEED;
    let mut cpus = None;
    let mut policies: Vec<&'static str> = Vec::new();
    let mut with_synthetic = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--trace" => {
                let path = args.next().ok_or("--trace needs a path")?;
                traces.push(PathBuf::from(path));
            }
            "--requests" => {
                let n = args.next().ok_or("--requests needs a number")?;
                requests = n.parse().map_err(|e| format!("--requests {n}: {e}"))?;
                if requests == 0 {
                    return Err("--requests must be > 0".into());
                }
            }
            "--size" => {
                let n = args.next().ok_or("--size needs a number")?;
                let n: usize = n.parse().map_err(|e| format!("--size {n}: {e}"))?;
                if n == 0 {
                    return Err("--size must be > 0".into());
                }
                sizes.push(n);
            }
            "--seed" => {
                let n = args.next().ok_or("--seed needs a number")?;
                seed = n.parse().map_err(|e| format!("--seed {n}: {e}"))?;
            }
            "--cpus" => {
                let n = args.next().ok_or("--cpus needs a number")?;
                let n: usize = n.parse().map_err(|e| format!("--cpus {n}: {e}"))?;
                if n == 0 {
                    return Err("--cpus must be > 0".into());
                }
                cpus = Some(n);
            }
            "--policy" => {
                let name = args.next().ok_or("--policy needs a name")?;
                let p = POLICIES
                    .iter()
                    .find(|p| **p == name.as_str())
                    .ok_or_else(|| {
                        format!("unknown policy {name:?}; one of {}", POLICIES.join(", "))
                    })?;
                policies.push(p);
            }
            "--no-synthetic" => with_synthetic = false,
            other => return Err(format!("unknown option {other}; {USAGE}")),
        }
    }
    if policies.is_empty() {
        policies = POLICIES.to_vec();
    }
    println!(
        "Miss ratio (lower is better): get, and insert on a miss, one thread, hash seed {seed}{}. \
         Sizes are 1%, 5% and 10% of each workload's distinct keys (the \
         workloads marked \"fixed\" at the sizes shown). Best of the row in bold.\n",
        cpus.map_or_else(String::new, |n| format!(
            ", keel Cache sharded as on {n} CPUs"
        ))
    );
    if with_synthetic {
        println!("### Synthetic workloads ({requests} requests each, 100,000-key Zipf)\n");
        table(&synthetic(requests), &[], &policies, seed, cpus);
    }
    if !traces.is_empty() {
        let mut loaded = Vec::new();
        for path in &traces {
            let keys = read_trace(path)?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            loaded.push(Workload::new(name, keys));
        }
        println!("\n### Traces\n");
        table(&loaded, &sizes, &policies, seed, cpus);
    }
    Ok(())
}

fn table(
    workloads: &[Workload],
    extra_sizes: &[usize],
    policies: &[&str],
    seed: u64,
    cpus: Option<usize>,
) {
    print!("| workload | size |");
    for p in policies {
        print!(" {p} |");
    }
    println!();
    print!("|---|---|");
    for _ in policies {
        print!("---|");
    }
    println!();
    for w in workloads {
        let sizes: Vec<(usize, String)> = match &w.sizes {
            Some(fixed) => fixed.iter().map(|&n| (n, "fixed".to_string())).collect(),
            None => [1, 5, 10]
                .map(|pct| ((w.distinct * pct / 100).max(1), format!("{pct}%")))
                .into_iter()
                .chain(
                    extra_sizes
                        .iter()
                        .filter(|&&n| n < w.distinct / 2)
                        .map(|&n| (n, "fixed".to_string())),
                )
                .collect(),
        };
        for (size, label) in sizes {
            let ratios: Vec<f64> = policies
                .iter()
                .map(|p| miss_ratio(p, &w.keys, size, seed, cpus))
                .collect();
            let best = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            print!("| {} | {size} ({label}) |", w.name);
            for r in ratios {
                if (r - best).abs() < 5e-5 {
                    print!(" **{r:.4}** |");
                } else {
                    print!(" {r:.4} |");
                }
            }
            println!();
        }
    }
}
