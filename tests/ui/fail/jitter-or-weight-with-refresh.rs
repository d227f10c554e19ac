use memo::memoize;

#[memoize(ttl = "30s", refresh = "25s", ttl_jitter = "10%")]
fn jittered(x: u32) -> u32 {
    x
}

#[memoize(ttl = "30s", stale_while_revalidate = "1m", maxweight = "1MiB")]
fn weighed(x: u32) -> String {
    x.to_string()
}

fn main() {}
