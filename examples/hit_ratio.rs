//! Hit ratios of every policy on recorded traces, with Belady's OPT as the ceiling.
//!
//! ```text
//! cargo run --release --example hit_ratio                        # every trace, README sizes
//! cargo run --release --example hit_ratio -- --trace lirs-loop --sizes 16 51
//! cargo run --release --example hit_ratio -- --zipf              # zipf 0.99, 1M keys, 10k
//! ```
//!
//! Traces are files of little-endian `u32` keys (`NAME.u32`), read from `--dir`, else
//! `$MEMO_TRACES`, else `../shared/traces` beside the repository. Each cell replays one trace
//! through a cold, single-shard `memo::Cache` of the given size, one request at a time: `get`,
//! then `insert` on a miss. The sizes default to those listed for the trace in the directory's
//! README.md table. Options: `--trace NAME|PATH...`, `--sizes N...`, `--policy NAME...`,
//! `--jobs N` (threads, default 2), `--out FILE` (also write the markdown there), `--zipf`.
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use memo::{Cache, Policy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fixed, fast hasher, so that every run gives the same numbers (the sketch of the adaptive
/// policy sees hash collisions, which a randomly seeded hasher would vary from run to run).
#[derive(Clone, Copy, Default)]
struct FixedState;

/// The splitmix64 finalizer over the written words.
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        let mut z = (self.0 ^ n).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for FixedState {
    type Hasher = MixHasher;

    fn build_hasher(&self) -> MixHasher {
        MixHasher::default()
    }
}

/// The hit ratio (%) of `policy` with `size` entries on `keys[skip..]`, after replaying
/// `keys[..skip]` from a cold start.
fn replay(policy: Policy, size: usize, keys: &[u32], skip: usize) -> f64 {
    let cache: Cache<u32, (), FixedState> = Cache::builder()
        .maxsize(size)
        .policy(policy)
        .shards(1)
        .hasher(FixedState)
        .build()
        .expect("a valid cache configuration");
    let mut hits = 0u64;
    for (i, &k) in keys.iter().enumerate() {
        if cache.get(&k).is_some() {
            hits += u64::from(i >= skip);
        } else {
            cache.insert(k, ());
        }
    }
    percent(hits, keys.len() - skip.min(keys.len()))
}

fn percent(hits: u64, requests: usize) -> f64 {
    100.0 * hits as f64 / requests.max(1) as f64
}

/// For each request, the index of the next request of the same key (`keys.len()` if none).
fn next_uses(keys: &[u32]) -> Vec<u32> {
    let distinct = keys.iter().max().map_or(0, |&k| k as usize + 1);
    let mut last = vec![keys.len() as u32; distinct];
    let mut next = vec![0u32; keys.len()];
    for (i, &k) in keys.iter().enumerate().rev() {
        next[i] = last[k as usize];
        last[k as usize] = i as u32;
    }
    next
}

/// Belady's OPT: on a miss with a full cache, the key whose next use is furthest away goes,
/// the incoming key included (it is not stored if it is that key). A max-heap of (next use,
/// key) with stale entries skipped: O(n log n).
fn opt(size: usize, keys: &[u32], next: &[u32]) -> f64 {
    if size == 0 {
        return 0.0;
    }
    const ABSENT: u32 = u32::MAX;
    let distinct = keys.iter().max().map_or(0, |&k| k as usize + 1);
    // The next use each stored key is waiting for, or ABSENT.
    let mut stored = vec![ABSENT; distinct];
    let mut len = 0usize;
    let mut heap: BinaryHeap<(u32, u32)> = BinaryHeap::with_capacity(size * 2);
    let mut hits = 0u64;
    for (i, &k) in keys.iter().enumerate() {
        let n = next[i];
        if stored[k as usize] != ABSENT {
            hits += 1;
        } else {
            if len == size {
                let furthest = loop {
                    let &(when, key) = heap.peek().expect("a full cache has entries");
                    if stored[key as usize] == when {
                        break when;
                    }
                    heap.pop(); // stale: the key was used or evicted since
                };
                if furthest <= n {
                    continue; // the incoming key is needed last: do not store it
                }
                let (_, victim) = heap.pop().expect("peeked above");
                stored[victim as usize] = ABSENT;
                len -= 1;
            }
            len += 1;
        }
        stored[k as usize] = n;
        heap.push((n, k));
        if heap.len() > 4 * size + 1024 {
            heap.retain(|&(when, key)| stored[key as usize] == when);
        }
    }
    percent(hits, keys.len())
}

/// One row of the table: a trace at one size.
struct Row {
    trace: String,
    requests: usize,
    size: usize,
    opt: f64,
    ratios: Vec<f64>,
}

struct Options {
    dir: PathBuf,
    traces: Vec<String>,
    sizes: Vec<usize>,
    policies: Vec<Policy>,
    jobs: usize,
    out: Option<PathBuf>,
    zipf: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        dir: std::env::var_os("MEMO_TRACES").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces"),
            PathBuf::from,
        ),
        traces: Vec::new(),
        sizes: Vec::new(),
        policies: Policy::ALL.to_vec(),
        jobs: 2,
        out: None,
        zipf: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    // The values after a flag: up to the next flag, commas also separating.
    let values = |i: &mut usize| -> Vec<String> {
        let mut v = Vec::new();
        while *i + 1 < args.len() && !args[*i + 1].starts_with("--") {
            *i += 1;
            v.extend(
                args[*i]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        v
    };
    let mut policies = Vec::new();
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => opts.dir = values(&mut i).pop().ok_or("--dir needs a path")?.into(),
            "--trace" => opts.traces.extend(values(&mut i)),
            "--sizes" => {
                for s in values(&mut i) {
                    opts.sizes
                        .push(s.parse().map_err(|e| format!("size `{s}`: {e}"))?);
                }
            }
            "--policy" => {
                for s in values(&mut i) {
                    policies.push(s.parse::<Policy>()?);
                }
            }
            "--jobs" => {
                let s = values(&mut i).pop().ok_or("--jobs needs a number")?;
                opts.jobs = s.parse().map_err(|e| format!("jobs `{s}`: {e}"))?;
            }
            "--out" => opts.out = Some(values(&mut i).pop().ok_or("--out needs a path")?.into()),
            "--zipf" => opts.zipf = true,
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
        i += 1;
    }
    if !policies.is_empty() {
        opts.policies = policies;
    }
    opts.jobs = opts.jobs.max(1);
    Ok(opts)
}

const USAGE: &str = "usage: hit_ratio [--dir DIR] [--trace NAME|PATH...] [--sizes N...] \
                     [--policy NAME...] [--jobs N] [--out FILE] [--zipf]";

/// The sizes listed per trace in the README's table of reference hit ratios.
fn readme_sizes(dir: &Path) -> Vec<(String, usize)> {
    let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let size = cells.get(2)?.trim().parse().ok()?;
            cells.get(1)?.trim().parse::<usize>().ok()?;
            Some((cells[0].trim().to_string(), size))
        })
        .collect()
}

fn read_trace(path: &Path) -> Result<Vec<u32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The trace files to replay: the named ones, or every `.u32` file in the directory.
fn trace_paths(opts: &Options) -> Result<Vec<(String, PathBuf)>, String> {
    if opts.traces.is_empty() {
        let entries = std::fs::read_dir(&opts.dir)
            .map_err(|e| format!("{}: {e} (set --dir or MEMO_TRACES)", opts.dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "u32"))
            .collect();
        paths.sort();
        return Ok(paths.into_iter().map(|p| (stem(&p), p)).collect());
    }
    Ok(opts
        .traces
        .iter()
        .map(|t| {
            let path = Path::new(t);
            if path.is_file() {
                (stem(path), path.to_path_buf())
            } else {
                (t.clone(), opts.dir.join(format!("{t}.u32")))
            }
        })
        .collect())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

/// The sizes of a trace: given, listed in the README, or fractions of its distinct keys.
fn sizes_for(opts: &Options, listed: &[(String, usize)], name: &str, keys: &[u32]) -> Vec<usize> {
    if !opts.sizes.is_empty() {
        return opts.sizes.clone();
    }
    let sizes: Vec<usize> = listed
        .iter()
        .filter(|(t, _)| t == name)
        .map(|&(_, s)| s)
        .collect();
    if !sizes.is_empty() {
        return sizes;
    }
    let distinct = keys.iter().max().map_or(0, |&k| k as usize + 1);
    [0.001, 0.01, 0.05, 0.2]
        .iter()
        .map(|f| ((distinct as f64 * f) as usize).max(8))
        .collect()
}

/// One replay to run on some thread.
type Task<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Runs `tasks` on `jobs` threads, each task once.
fn run_parallel<T: Send>(jobs: usize, tasks: Vec<Task<'_, T>>) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Task<'_, T>>>> =
        tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<T>>> = slots.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(slots.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = slots.get(i) else { break };
                let task = slot.lock().unwrap().take().expect("each task runs once");
                *results[i].lock().unwrap() = Some(task());
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every task ran"))
        .collect()
}

fn traces_table(opts: &Options) -> Result<String, String> {
    let listed = readme_sizes(&opts.dir);
    let mut rows = Vec::new();
    for (name, path) in trace_paths(opts)? {
        let started = Instant::now();
        let keys = read_trace(&path)?;
        let next = next_uses(&keys);
        let sizes = sizes_for(opts, &listed, &name, &keys);
        let mut tasks: Vec<Task<'_, f64>> = Vec::new();
        for &size in &sizes {
            let (keys, next) = (&keys, &next);
            tasks.push(Box::new(move || opt(size, keys, next)));
            for &policy in &opts.policies {
                tasks.push(Box::new(move || replay(policy, size, keys, 0)));
            }
        }
        let results = run_parallel(opts.jobs, tasks);
        for (i, &size) in sizes.iter().enumerate() {
            let cell = &results[i * (opts.policies.len() + 1)..][..opts.policies.len() + 1];
            rows.push(Row {
                trace: name.clone(),
                requests: keys.len(),
                size,
                opt: cell[0],
                ratios: cell[1..].to_vec(),
            });
        }
        eprintln!("{name}: {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(render(opts, &rows))
}

fn render(opts: &Options, rows: &[Row]) -> String {
    let mut out = String::new();
    let names: Vec<String> = opts.policies.iter().map(|p| title(*p)).collect();
    let _ = writeln!(
        out,
        "| trace | requests | size | OPT | {} |",
        names.join(" | ")
    );
    let _ = writeln!(out, "|---|---:|---:|---:|{}", "---:|".repeat(names.len()));
    for r in rows {
        let cells: Vec<String> = r.ratios.iter().map(|x| format!("{x:.2}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {} |",
            r.trace,
            r.requests,
            r.size,
            r.opt,
            cells.join(" | ")
        );
    }
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nMean gap to OPT over {} cells (points):\n",
        rows.len()
    );
    for (j, name) in names.iter().enumerate() {
        let gap: f64 = rows.iter().map(|r| r.opt - r.ratios[j]).sum::<f64>() / rows.len() as f64;
        let _ = writeln!(out, "- {name}: {gap:.2}");
    }
    let column = |p: Policy| opts.policies.iter().position(|&q| q == p);
    if let (Some(a), Some(l)) = (column(Policy::Adaptive), column(Policy::Lru)) {
        let worst = rows
            .iter()
            .min_by(|x, y| {
                let dx = x.ratios[a] - x.ratios[l];
                let dy = y.ratios[a] - y.ratios[l];
                dx.total_cmp(&dy)
            })
            .expect("rows is not empty");
        let _ = writeln!(
            out,
            "\nWorst cell of Adaptive minus LRU: {:+.2} points ({} at {}: {:.2} vs {:.2})",
            worst.ratios[a] - worst.ratios[l],
            worst.trace,
            worst.size,
            worst.ratios[a],
            worst.ratios[l]
        );
    }
    out
}

fn title(policy: Policy) -> String {
    match policy {
        Policy::Adaptive => "Adaptive".to_string(),
        p => p.name().to_uppercase(),
    }
}

/// Zipf(0.99) over 1M keys at capacity 10k: a warm-up, then the measured requests.
fn zipf_table(opts: &Options) -> String {
    const KEYS: usize = 1_000_000;
    const EXPONENT: f64 = 0.99;
    const CAPACITY: usize = 10_000;
    const WARM_UP: usize = 1_000_000;
    const MEASURED: usize = 5_000_000;
    // The cumulative weights of ranks 1..=KEYS; a uniform draw is looked up by binary search.
    let mut cdf = Vec::with_capacity(KEYS);
    let mut total = 0.0;
    for rank in 1..=KEYS {
        total += (rank as f64).powf(-EXPONENT);
        cdf.push(total);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_cafe);
    let keys: Vec<u32> = (0..WARM_UP + MEASURED)
        .map(|_| {
            let u = rng.gen::<f64>() * total;
            cdf.partition_point(|&c| c < u).min(KEYS - 1) as u32
        })
        .collect();
    let tasks: Vec<Task<'_, f64>> = opts
        .policies
        .iter()
        .map(|&policy| {
            let keys = &keys;
            Box::new(move || replay(policy, CAPACITY, keys, WARM_UP)) as Task<'_, f64>
        })
        .collect();
    let ratios = run_parallel(opts.jobs, tasks);
    let mut out = format!(
        "zipf {EXPONENT} over {KEYS} keys, capacity {CAPACITY}, {MEASURED} requests after \
         {WARM_UP} of warm-up:\n\n"
    );
    for (p, r) in opts.policies.iter().zip(ratios) {
        let _ = writeln!(out, "- {}: {r:.2}%", title(*p));
    }
    out
}

fn main() {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let result = if opts.zipf {
        Ok(zipf_table(&opts))
    } else {
        traces_table(&opts)
    };
    match result {
        Ok(table) => {
            println!("{table}");
            eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
            if let Some(path) = &opts.out {
                if let Err(e) = std::fs::write(path, &table) {
                    eprintln!("{}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
