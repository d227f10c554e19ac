// `#[memoize]` on an `impl` block takes no options but `crate`: each function gives its own. One
// error at the option; the block still expands, so call sites and companions resolve.
use memo::memoize;

struct Stats;

#[memoize(maxsize = 64)]
impl Stats {
    #[memoize]
    fn mean(xs: &[u64]) -> u64 {
        xs.iter().sum::<u64>() / xs.len() as u64
    }
}

fn main() {
    let _ = Stats::mean(&[1, 2]);
    let _ = Stats::mean_cache_info();
}
