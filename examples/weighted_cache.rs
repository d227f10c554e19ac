//! Size-weighted bounds: a cache bounded by the bytes of its values, not their number.
//!
//! ```text
//! cargo run --release --example weighted_cache
//! ```
//!
//! `render(page)` returns pages of very different sizes (1 KiB to 64 KiB). `maxsize = 128`
//! would hold anywhere from 128 KiB to 8 MiB of them; `maxweight = "256KiB"` holds as many
//! pages as fit in 256 KiB, weighed by `memo::Weigh` (a `String` weighs its bytes). A page
//! larger than the whole bound is never cached. The same bound on a `memo::Cache` takes a
//! weigher closure. `maxweight` works the same on methods, generic functions, `key = ...`,
//! `cache_field` and with `refresh`, and bounds a store's near cache (`local = N`).
use std::sync::atomic::{AtomicUsize, Ordering};

use memo::{memoize, Cache, Weigh};

static RENDERS: AtomicUsize = AtomicUsize::new(0);

/// Page `n`, `1 + n % 64` KiB long (page 1000 is 300 KiB: too large to cache).
#[memoize(maxweight = "256KiB")]
fn render(page: u32) -> String {
    RENDERS.fetch_add(1, Ordering::Relaxed);
    let kib = if page == 1000 {
        300
    } else {
        1 + page as usize % 64
    };
    "x".repeat(kib << 10)
}

fn main() {
    // Pages 0..20 weigh 1 + 2 + ... + 20 = 210 KiB: all fit, the second round is all hits.
    // Pages 0..40 weigh 820 KiB: each round evicts the least recently used to make room.
    for (round, pages) in [(0, 20), (1, 20), (2, 40), (3, 40)] {
        for page in 0..pages {
            render(page);
        }
        let info = render::cache_info();
        println!(
            "round {round} (pages 0..{pages}): {:>3} renders so far, {:>2} pages cached (maxsize {:?})",
            RENDERS.load(Ordering::Relaxed),
            info.currsize,
            info.maxsize
        );
        if round == 1 {
            assert_eq!(RENDERS.load(Ordering::Relaxed), 20, "round 1 is all hits");
        }
    }
    let before = RENDERS.load(Ordering::Relaxed);
    render(1000);
    render(1000);
    println!(
        "page 1000 (300 KiB) rendered {} times: larger than the bound, never cached",
        RENDERS.load(Ordering::Relaxed) - before
    );
    assert_eq!(RENDERS.load(Ordering::Relaxed) - before, 2);

    // A `memo::Cache` with a weigher of its own: the bytes of the key and the value.
    let cache: Cache<String, Vec<u8>> = Cache::builder()
        .weigher(|k: &String, v: &Vec<u8>| k.weight() + v.weight())
        .max_weight(10_000)
        .build()
        .expect("a valid configuration");
    for i in 0..100 {
        cache.insert(format!("blob-{i}"), vec![0; 50 * (i % 7 + 1)]);
        assert!(cache.weight() <= 10_000);
    }
    println!(
        "\nCache<String, Vec<u8>>: {} entries weighing {} of {} bytes",
        cache.len(),
        cache.weight(),
        cache.max_weight().unwrap()
    );
    println!("{}", render::cache_info());
}
