//! `maxweight` on every storage and `ttl_jitter` with `refresh` and stale windows, warnings
//! denied.
#![deny(warnings)]

use memo::{memoize, InstanceCache};

#[memoize(ttl = "30s", refresh = "25s", ttl_jitter = "10%", maxweight = "1MiB")]
fn jittered(x: u32) -> String {
    x.to_string()
}

#[memoize(ttl = "30s", stale_while_revalidate = "1m", ttl_jitter = "50%")]
fn stale(x: u32) -> Option<u32> {
    Some(x)
}

#[memoize(maxweight = "64KiB", key = id)]
fn keyed(id: u32, label: &str) -> Vec<u8> {
    label.as_bytes().iter().map(|b| b ^ id as u8).collect()
}

#[memoize(maxweight = "64KiB", ttl = "1m", ttl_jitter = "20%")]
fn generic<T: ToString + std::hash::Hash + Eq + Clone + Send + Sync + 'static>(x: T) -> String {
    x.to_string()
}

#[derive(Default, Clone)]
struct Pages {
    own: InstanceCache,
}

impl Pages {
    #[memoize(maxweight = "1MiB", ignore = [self])]
    fn shared(&self, id: u32) -> String {
        id.to_string()
    }

    #[memoize(cache_field = own, maxweight = "1MiB")]
    fn own(&self, id: u32) -> Result<String, std::num::ParseIntError> {
        Ok(id.to_string())
    }

    #[memoize(ttl = "1m", refresh = "30s", maxweight = "1MiB", ignore = [self])]
    fn refreshed(&self, id: u32) -> Box<str> {
        id.to_string().into()
    }
}

fn main() {
    let pages = Pages::default();
    assert_eq!(jittered(1), "1");
    assert_eq!(stale(2), Some(2));
    assert_eq!(keyed(3, "ab").len(), 2);
    assert_eq!(generic(4u8), "4");
    assert_eq!(pages.shared(5), "5");
    assert_eq!(pages.own(6).unwrap(), "6");
    assert_eq!(&*pages.refreshed(7), "7");
}
