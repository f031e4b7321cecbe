//! `compare cache`: miss ratios of keel's caches beside moka, quick_cache and lru.
//!
//! `compare cache [--requests N] [--trace PATH]... [--size N]...`: the built-in synthetic
//! workloads, then every trace given (one integer key per line, gzip or plain), each at 1%,
//! 5% and 10% of its distinct keys and at every `--size` given (e.g. 2000 and 10000 for
//! arc-oltp, the sizes published comparisons use).

use std::path::PathBuf;

use keel_benches::cache::{POLICIES, Workload, miss_ratio, read_trace, synthetic};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut traces = Vec::new();
    let mut requests = 300_000usize;
    let mut sizes = Vec::new();
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
            other => {
                return Err(format!(
                    "unknown option {other}; usage: compare cache [--requests N] [--trace PATH]... [--size N]..."
                ));
            }
        }
    }
    println!(
        "Miss ratio (lower is better): get, and insert on a miss, one thread. Sizes are 1%, 5% \
         and 10% of each workload's distinct keys. Best of the row in bold.\n"
    );
    println!("### Synthetic workloads ({requests} requests each, 100,000-key Zipf)\n");
    table(&synthetic(requests), &[]);
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
        table(&loaded, &sizes);
    }
    Ok(())
}

fn table(workloads: &[Workload], extra_sizes: &[usize]) {
    print!("| workload | size |");
    for p in POLICIES {
        print!(" {p} |");
    }
    println!();
    print!("|---|---|");
    for _ in POLICIES {
        print!("---|");
    }
    println!();
    for w in workloads {
        let sizes = [1, 5, 10]
            .map(|pct| ((w.distinct * pct / 100).max(1), format!("{pct}%")))
            .into_iter()
            .chain(
                extra_sizes
                    .iter()
                    .filter(|&&n| n < w.distinct / 2)
                    .map(|&n| (n, "fixed".to_string())),
            );
        for (size, label) in sizes {
            let ratios: Vec<f64> = POLICIES
                .iter()
                .map(|p| miss_ratio(p, &w.keys, size))
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
