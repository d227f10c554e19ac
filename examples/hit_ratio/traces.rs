//! Generated key streams for the access patterns where recency-based and frequency-based
//! policies fail each other: loops (forward and backward), zigzag sweeps (also with a drifting
//! centre and width), scans through a Zipf
//! hot set, phase changes, sliding working sets, and mixtures of a loop with a hot set. Each
//! trace's sizes put its working set at 0.5x to 3x the cache, and also at the 5% to 25% of the
//! LIRS paper's small looping traces; the least is 16 entries.
//!
//! Keys are numbered from 0 in order of first appearance, as in the recorded traces. Every
//! trace is a pure function of its name, so runs are reproducible.

/// A generated trace: its name, its keys, and the cache sizes it is judged at.
pub struct Generated {
    pub name: String,
    pub family: &'static str,
    pub keys: Vec<u32>,
    pub sizes: Vec<usize>,
}

/// The splitmix64 generator: small, fast, and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws ranks `0..n` with probability proportional to `1 / (rank + 1)^exponent`.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-exponent);
                total
            })
            .collect();
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit() * self.cdf.last().copied().unwrap_or(0.0);
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Renumbers keys by first appearance (the recorded traces' convention, which OPT relies on to
/// size its tables).
fn renumber(raw: impl IntoIterator<Item = u64>) -> Vec<u32> {
    let mut ids = std::collections::HashMap::new();
    raw.into_iter()
        .map(|k| {
            let next = ids.len() as u32;
            *ids.entry(k).or_insert(next)
        })
        .collect()
}

/// Cache sizes for a working set of `w` keys: the working set at 0.5x to 3x the cache, and the
/// cache at 5%, 10% and 25% of it (as in the LIRS traces that hurt), at least 16 entries each.
fn sizes_for(w: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = [
        2.0,
        1.25,
        1.0,
        0.8,
        2.0 / 3.0,
        0.5,
        1.0 / 3.0,
        0.25,
        0.1,
        0.05,
    ]
    .iter()
    .map(|f| ((w as f64 * f).round() as usize).max(16))
    .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    sizes
}

/// Requests for a trace over `w` keys: ten passes, between 20k and 100k.
fn length(w: usize) -> usize {
    (w * 10).clamp(20_000, 100_000)
}

/// `0, 1, .., w-1, 0, 1, ..`
fn forward_loop(w: usize) -> Vec<u32> {
    renumber((0..length(w)).map(|i| (i % w) as u64))
}

/// `w-1, .., 1, 0, w-1, ..`
fn backward_loop(w: usize) -> Vec<u32> {
    renumber((0..length(w)).map(|i| (w - 1 - i % w) as u64))
}

/// `0, 1, .., w-1, w-1, .., 1, 0, 0, 1, ..`: back-and-forth sweeps (LRU is optimal).
fn zigzag(w: usize) -> Vec<u32> {
    renumber((0..length(w)).map(|i| {
        let at = i % (2 * w);
        (if at < w { at } else { 2 * w - 1 - at }) as u64
    }))
}

/// Sweeps of random lengths (up to `w`) forward or backward from random points of `2w` keys:
/// the short, repeated scans of program traces.
fn sweeps(w: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let n = length(w);
    let mut raw = Vec::with_capacity(n);
    while raw.len() < n {
        let len = 1 + rng.below(w as u64);
        let start = rng.below(2 * w as u64);
        let forward = rng.below(2) == 0;
        for j in 0..len {
            let k = if forward {
                (start + j) % (2 * w as u64)
            } else {
                (start + 2 * w as u64 - j) % (2 * w as u64)
            };
            raw.push(k);
        }
    }
    raw.truncate(n);
    renumber(raw)
}

/// Back-and-forth sweeps over `w` keys whose width and centre drift: each sweep goes out from
/// `centre - half` to `centre + half` and back, with a half-width of `w / 15` to `4w / 15` and the
/// centre moved by up to `w / 10` between sweeps. LRU is near the best online policy here (each
/// key comes back soonest near the turns), yet frequency copies lead it for stretches, which is
/// what a policy that follows leads loses on.
fn drift(w: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let n = length(w) * 2;
    let w = w as u64;
    let mut raw = Vec::with_capacity(n);
    let mut centre = w / 3;
    while raw.len() < n {
        let half = (w / 15 + rng.below(w / 5 + 1)).max(1);
        let step = rng.below(w / 5 + 1) as i64 - (w / 10) as i64;
        centre = (centre as i64 + step).clamp(half as i64, (w - half) as i64) as u64;
        raw.extend(centre - half..centre + half);
        raw.extend((centre - half..centre + half).rev());
    }
    raw.truncate(n);
    renumber(raw)
}

/// Zipf(0.9) over `w` hot keys; every `4w` requests a scan of `w` keys never seen before.
fn zipf_with_scans(w: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let zipf = Zipf::new(w, 0.9);
    let n = length(w) * 2;
    let mut raw = Vec::with_capacity(n);
    let mut fresh = 1u64 << 40;
    while raw.len() < n {
        for _ in 0..4 * w {
            raw.push(zipf.sample(&mut rng) as u64);
        }
        for _ in 0..w {
            raw.push(fresh);
            fresh += 1;
        }
    }
    raw.truncate(n);
    renumber(raw)
}

/// Four phases of `length / 4` requests, each a Zipf(0.8) over its own `w` keys, the last
/// phase back to the first phase's keys.
fn phases(w: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let zipf = Zipf::new(w, 0.8);
    let n = length(w) * 2;
    let offsets = [0u64, 1, 2, 0];
    renumber((0..n).map(|i| {
        let phase = offsets[i * 4 / n] << 32;
        phase | zipf.sample(&mut rng) as u64
    }))
}

/// Uniform draws from a window of `w` keys that slides forward one key every 4 requests:
/// strongly recency-friendly (LRU is near optimal).
fn sliding(w: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    renumber((0..length(w)).map(|i| (i / 4) as u64 + rng.below(w as u64)))
}

/// A loop over `w` keys interleaved with Zipf(0.9) draws over `w / 4` others, one each.
fn loop_and_hot(w: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let zipf = Zipf::new((w / 4).max(1), 0.9);
    renumber((0..length(w)).map(|i| {
        if i % 2 == 0 {
            (i / 2 % w) as u64
        } else {
            1 << 40 | zipf.sample(&mut rng) as u64
        }
    }))
}

/// The families and working-set sizes of [`all`].
pub const TRACES: &[(&str, &[usize])] = &[
    ("loop", &[100, 1000, 5000]),
    ("backloop", &[100, 1000, 5000]),
    ("zigzag", &[100, 1000, 5000]),
    ("sweeps", &[500, 3000]),
    ("drift", &[500, 3000]),
    ("zipf+scans", &[500, 3000]),
    ("phases", &[500, 3000]),
    ("sliding", &[500, 3000]),
    ("loop+hot", &[500, 3000]),
];

/// The trace of `family` over a working set of `w` keys, if the family exists.
pub fn generate(family: &str, w: usize) -> Option<Generated> {
    let seed = w as u64;
    let (family, keys) = match family {
        "loop" => ("loop", forward_loop(w)),
        "backloop" => ("backloop", backward_loop(w)),
        "zigzag" => ("zigzag", zigzag(w)),
        "sweeps" => ("sweeps", sweeps(w, seed)),
        "drift" => ("drift", drift(w, seed)),
        "zipf+scans" => ("zipf+scans", zipf_with_scans(w, seed)),
        "phases" => ("phases", phases(w, seed)),
        "sliding" => ("sliding", sliding(w, seed)),
        "loop+hot" => ("loop+hot", loop_and_hot(w, seed)),
        _ => return None,
    };
    Some(Generated {
        name: format!("{family}-{w}"),
        family,
        keys,
        sizes: sizes_for(w),
    })
}

/// Every generated trace, in a fixed order.
pub fn all() -> Vec<Generated> {
    TRACES
        .iter()
        .flat_map(|&(family, ws)| ws.iter().filter_map(move |&w| generate(family, w)))
        .collect()
}
