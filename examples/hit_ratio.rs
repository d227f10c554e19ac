//! Hit ratios of every policy on generated and recorded traces, with Belady's OPT as the
//! ceiling, and the adaptive policy's worst result over many hasher seeds.
//!
//! ```text
//! cargo run --release --example hit_ratio                        # generated traces
//! cargo run --release --example hit_ratio -- --seeds 32          # min over 32 hasher seeds
//! cargo run --release --example hit_ratio -- --dir ../shared/traces --seeds 32
//! cargo run --release --example hit_ratio -- --dir ../shared/traces --trace lirs-loop --sizes 16 51
//! cargo run --release --example hit_ratio -- --zipf              # zipf 0.99, 1M keys, 10k
//! ```
//!
//! Without `--dir` (or `$MEMO_TRACES`), the traces are generated (see `hit_ratio/traces.rs`):
//! loops, zigzag sweeps, scans in a Zipf hot set, phase changes, sliding working sets, each at
//! sizes that put its working set at 0.5x to 3x the cache and the cache at 5% to 25% of it.
//! With `--dir`, they are files of little-endian `u32` keys (`NAME.u32`) in that directory;
//! `--generated` adds the generated ones to those. Each cell replays one trace through a cold,
//! single-shard `memo::Cache` of the given size, one request at a time: `get`, then `insert` on
//! a miss. The sizes of a recorded trace default to those listed for it in the directory's
//! README.md table. The adaptive policy hashes keys into its frequency sketch and ghosts, so
//! its result depends on the hasher's seed: `--seeds N` replays it with seeds `0..N` and adds
//! the worst of them. Options: `--trace NAME|PATH...`, `--family NAME...` (generated only),
//! `--sizes N...`, `--policy NAME...`, `--seeds N` (default 1), `--jobs N` (threads, default 2),
//! `--out FILE` (also write the markdown there), `--zipf`.

#[path = "hit_ratio/traces.rs"]
#[allow(dead_code)] // shared with tests/adaptive_vs_lru.rs, which uses other parts of it
mod traces;
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

/// A fast hasher with a chosen seed, so that every run gives the same numbers for a seed (the
/// adaptive policy's sketch and ghosts see hash collisions, which vary with the seed).
#[derive(Clone, Copy, Default)]
struct FixedState(u64);

impl FixedState {
    /// The hasher of seed number `seed`: its state is the seed mixed over all 64 bits. A small
    /// seed used as the state directly would hash key `k` as the unseeded hasher hashes
    /// `k ^ seed`, only permuting the hashes of keys that differ in their low bits, and the
    /// traces number their keys from 0: seeds 0 to 255 then gave the same worst result in
    /// some cells, and hid hashings 1.2 points worse (3.2 points below LRU instead of 2.0).
    fn seeded(seed: u64) -> Self {
        let mut mix = MixHasher(0x5eed);
        mix.write_u64(seed);
        FixedState(mix.finish())
    }
}

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
        MixHasher(self.0)
    }
}

/// The hit ratio (%) of `policy` with `size` entries and hasher seed `seed` on `keys[skip..]`,
/// after replaying `keys[..skip]` from a cold start.
fn replay(policy: Policy, size: usize, seed: u64, keys: &[u32], skip: usize) -> f64 {
    let cache: Cache<u32, (), FixedState> = Cache::builder()
        .maxsize(size)
        .policy(policy)
        .shards(1)
        .hasher(FixedState::seeded(seed))
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
    /// The generated trace's family, or the recorded trace's name.
    family: String,
    requests: usize,
    size: usize,
    opt: f64,
    /// Per policy, with hasher seed 0.
    ratios: Vec<f64>,
    /// The adaptive policy's lowest hit ratio over the seeds, if it was replayed.
    adaptive_min: Option<f64>,
}

struct Options {
    dir: Option<PathBuf>,
    generated: bool,
    traces: Vec<String>,
    families: Vec<String>,
    sizes: Vec<usize>,
    policies: Vec<Policy>,
    seeds: u64,
    jobs: usize,
    out: Option<PathBuf>,
    zipf: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        dir: std::env::var_os("MEMO_TRACES").map(PathBuf::from),
        generated: false,
        traces: Vec::new(),
        families: Vec::new(),
        sizes: Vec::new(),
        policies: Policy::ALL.to_vec(),
        seeds: 1,
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
    let number = |flag: &str, v: Option<String>| -> Result<u64, String> {
        let s = v.ok_or(format!("{flag} needs a number"))?;
        s.parse().map_err(|e| format!("{flag} `{s}`: {e}"))
    };
    let mut policies = Vec::new();
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => opts.dir = Some(values(&mut i).pop().ok_or("--dir needs a path")?.into()),
            "--generated" => opts.generated = true,
            "--trace" => opts.traces.extend(values(&mut i)),
            "--family" => opts.families.extend(values(&mut i)),
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
            "--seeds" => opts.seeds = number("--seeds", values(&mut i).pop())?.max(1),
            "--jobs" => opts.jobs = number("--jobs", values(&mut i).pop())? as usize,
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
    opts.generated |= opts.dir.is_none();
    opts.jobs = opts.jobs.max(1);
    Ok(opts)
}

const USAGE: &str = "usage: hit_ratio [--dir DIR] [--generated] [--trace NAME|PATH...] \
                     [--family NAME...] [--sizes N...] [--policy NAME...] [--seeds N] \
                     [--jobs N] [--out FILE] [--zipf]";

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
fn trace_paths(opts: &Options, dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    if opts.traces.is_empty() {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e} (set --dir or MEMO_TRACES)", dir.display()))?;
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
                (t.clone(), dir.join(format!("{t}.u32")))
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

/// A trace to replay, read or generated.
struct Trace {
    name: String,
    family: String,
    keys: Vec<u32>,
    sizes: Vec<usize>,
}

/// The traces the options ask for, in order: recorded ones first.
fn load_traces(opts: &Options) -> Result<Vec<Trace>, String> {
    let mut out = Vec::new();
    if let Some(dir) = &opts.dir {
        let listed = readme_sizes(dir);
        for (name, path) in trace_paths(opts, dir)? {
            let keys = read_trace(&path)?;
            let sizes = sizes_for(opts, &listed, &name, &keys);
            out.push(Trace {
                family: name.clone(),
                name,
                keys,
                sizes,
            });
        }
    }
    if opts.generated {
        for g in traces::all() {
            let wanted =
                (opts.dir.is_some() || opts.traces.is_empty() || opts.traces.contains(&g.name))
                    && (opts.families.is_empty() || opts.families.iter().any(|f| f == g.family));
            if wanted {
                let sizes = if opts.sizes.is_empty() {
                    g.sizes
                } else {
                    opts.sizes.clone()
                };
                out.push(Trace {
                    name: g.name,
                    family: g.family.to_string(),
                    keys: g.keys,
                    sizes,
                });
            }
        }
    }
    Ok(out)
}

fn traces_table(opts: &Options) -> Result<String, String> {
    let adaptive = opts.policies.contains(&Policy::Adaptive);
    let extra_seeds = if adaptive { opts.seeds - 1 } else { 0 } as usize;
    let per_size = 1 + opts.policies.len() + extra_seeds;
    let mut rows = Vec::new();
    for trace in load_traces(opts)? {
        let started = Instant::now();
        let keys = &trace.keys;
        let next = next_uses(keys);
        let mut tasks: Vec<Task<'_, f64>> = Vec::new();
        for &size in &trace.sizes {
            let next = &next;
            tasks.push(Box::new(move || opt(size, keys, next)));
            for &policy in &opts.policies {
                tasks.push(Box::new(move || replay(policy, size, 0, keys, 0)));
            }
            for seed in 1..=extra_seeds as u64 {
                tasks.push(Box::new(move || {
                    replay(Policy::Adaptive, size, seed, keys, 0)
                }));
            }
        }
        let results = run_parallel(opts.jobs, tasks);
        for (i, &size) in trace.sizes.iter().enumerate() {
            let cell = &results[i * per_size..][..per_size];
            let ratios = cell[1..=opts.policies.len()].to_vec();
            let adaptive_min = opts
                .policies
                .iter()
                .position(|&p| p == Policy::Adaptive)
                .map(|a| {
                    cell[1 + opts.policies.len()..]
                        .iter()
                        .fold(ratios[a], |m, &x| m.min(x))
                });
            rows.push(Row {
                trace: trace.name.clone(),
                family: trace.family.clone(),
                requests: keys.len(),
                size,
                opt: cell[0],
                ratios,
                adaptive_min,
            });
        }
        eprintln!("{}: {:.1}s", trace.name, started.elapsed().as_secs_f64());
    }
    Ok(render(opts, &rows))
}

fn render(opts: &Options, rows: &[Row]) -> String {
    let mut out = String::new();
    let names: Vec<String> = opts.policies.iter().map(|p| title(*p)).collect();
    let column = |p: Policy| opts.policies.iter().position(|&q| q == p);
    let (a, l) = (column(Policy::Adaptive), column(Policy::Lru));
    let seeds = opts.seeds;
    let min_header = match (a, l) {
        (Some(_), Some(_)) => format!(" Adaptive, min of {seeds} seeds | min − LRU |"),
        (Some(_), None) => format!(" Adaptive, min of {seeds} seeds |"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "| trace | requests | size | OPT | {} |{min_header}",
        names.join(" | ")
    );
    let extra = min_header.matches('|').count();
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|{}",
        "---:|".repeat(names.len() + extra)
    );
    for r in rows {
        let mut cells: Vec<String> = r.ratios.iter().map(|x| format!("{x:.2}")).collect();
        if let Some(min) = r.adaptive_min {
            cells.push(format!("{min:.2}"));
            if let Some(l) = l {
                cells.push(format!("{:+.2}", min - r.ratios[l]));
            }
        }
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
    if a.is_some() {
        let gap: f64 = rows
            .iter()
            .map(|r| r.opt - r.adaptive_min.unwrap_or(0.0))
            .sum::<f64>()
            / rows.len() as f64;
        let _ = writeln!(out, "- Adaptive, min of {seeds} seeds per cell: {gap:.2}");
    }
    if let (Some(_), Some(l)) = (a, l) {
        // The worst cell of each family: adaptive's minimum over seeds minus LRU.
        let _ = writeln!(
            out,
            "\nWorst cell of Adaptive (min of {seeds} seeds) minus LRU, per family:\n"
        );
        let _ = writeln!(
            out,
            "| family | cell | Adaptive min | LRU | OPT | min − LRU |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        let mut families: Vec<&str> = Vec::new();
        for r in rows {
            if !families.contains(&r.family.as_str()) {
                families.push(&r.family);
            }
        }
        let delta = |r: &Row| r.adaptive_min.unwrap_or(0.0) - r.ratios[l];
        let mut overall: Option<&Row> = None;
        for family in families {
            let worst = rows
                .iter()
                .filter(|r| r.family == family)
                .min_by(|x, y| delta(x).total_cmp(&delta(y)))
                .expect("a family has rows");
            if overall.is_none_or(|o| delta(worst) < delta(o)) {
                overall = Some(worst);
            }
            let _ = writeln!(
                out,
                "| {family} | {} at {} | {:.2} | {:.2} | {:.2} | {:+.2} |",
                worst.trace,
                worst.size,
                worst.adaptive_min.unwrap_or(0.0),
                worst.ratios[l],
                worst.opt,
                delta(worst)
            );
        }
        if let Some(w) = overall {
            let _ = writeln!(
                out,
                "\nWorst cell of Adaptive minus LRU: {:+.2} points ({} at {})",
                delta(w),
                w.trace,
                w.size
            );
        }
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
    // Each policy with seed 0, then the adaptive policy with seeds 1..N.
    let mut runs: Vec<(Policy, u64)> = opts.policies.iter().map(|&p| (p, 0)).collect();
    if opts.policies.contains(&Policy::Adaptive) {
        runs.extend((1..opts.seeds).map(|seed| (Policy::Adaptive, seed)));
    }
    let tasks: Vec<Task<'_, f64>> = runs
        .iter()
        .map(|&(policy, seed)| {
            let keys = &keys;
            Box::new(move || replay(policy, CAPACITY, seed, keys, WARM_UP)) as Task<'_, f64>
        })
        .collect();
    let ratios = run_parallel(opts.jobs, tasks);
    let mut out = format!(
        "zipf {EXPONENT} over {KEYS} keys, capacity {CAPACITY}, {MEASURED} requests after \
         {WARM_UP} of warm-up:\n\n"
    );
    for (p, r) in opts.policies.iter().zip(&ratios) {
        let _ = writeln!(out, "- {}: {r:.2}%", title(*p));
    }
    if opts.seeds > 1 && opts.policies.contains(&Policy::Adaptive) {
        let min = runs
            .iter()
            .zip(&ratios)
            .filter(|((p, _), _)| *p == Policy::Adaptive)
            .fold(f64::INFINITY, |m, (_, &r)| m.min(r));
        let seeds = opts.seeds;
        let _ = writeln!(out, "- Adaptive, min of {seeds} seeds: {min:.2}%");
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
