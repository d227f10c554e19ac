//! Ketama consistent hashing: which of several memcached servers holds a key.
//!
//! The continuum of libketama (last.fm), which libmemcached (`MEMCACHED_BEHAVIOR_KETAMA`), pylibmc
//! and spymemcached implement: each server `host:port` puts 160 points on a ring of `u32`, four
//! per MD5 digest of `host:port-0` … `host:port-39`; a key goes to the first point at or after the
//! first four bytes (little-endian) of its own MD5, wrapping around. Adding or removing one of `n`
//! servers moves about `1/n` of the keys, and the same server list gives the same placement in
//! every process and in those clients.

use md5::{Digest, Md5};

/// Digests per server; four points each.
const DIGESTS_PER_SERVER: usize = 40;

/// The ring: points sorted, each with the index of its server.
#[derive(Clone, Debug)]
pub(crate) struct Ketama {
    points: Vec<(u32, usize)>,
}

/// The four points of one MD5 digest, as libketama reads them.
fn points_of(digest: &[u8; 16]) -> [u32; 4] {
    std::array::from_fn(|h| {
        u32::from_le_bytes([
            digest[h * 4],
            digest[h * 4 + 1],
            digest[h * 4 + 2],
            digest[h * 4 + 3],
        ])
    })
}

fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

impl Ketama {
    /// The ring of `servers` (`host:port`), all of equal weight.
    pub fn new<S: AsRef<str>>(servers: &[S]) -> Ketama {
        let mut points = Vec::with_capacity(servers.len() * DIGESTS_PER_SERVER * 4);
        for (index, server) in servers.iter().enumerate() {
            for k in 0..DIGESTS_PER_SERVER {
                let digest = md5(format!("{}-{k}", server.as_ref()).as_bytes());
                points.extend(points_of(&digest).into_iter().map(|p| (p, index)));
            }
        }
        points.sort_unstable();
        Ketama { points }
    }

    /// The index of the server that holds `key`.
    pub fn server(&self, key: &str) -> usize {
        let hash = points_of(&md5(key.as_bytes()))[0];
        let at = self.points.partition_point(|&(point, _)| point < hash);
        self.points.get(at).unwrap_or(&self.points[0]).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:11211")).collect()
    }

    #[test]
    fn keys_spread_evenly_over_the_servers() {
        let ring = Ketama::new(&servers(3));
        let mut counts = [0usize; 3];
        for i in 0..30_000 {
            counts[ring.server(&format!("memo:app::f:v1.0:1:[{i}]"))] += 1;
        }
        for count in counts {
            assert!((7_000..13_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn removing_one_server_moves_only_its_keys() {
        let all = servers(4);
        let before = Ketama::new(&all);
        let after = Ketama::new(&all[..3]);
        let mut moved = 0;
        for i in 0..10_000 {
            let key = format!("k{i}");
            let (was, is) = (before.server(&key), after.server(&key));
            if was != 3 {
                assert_eq!(was, is, "a key of a remaining server moved");
            } else {
                moved += 1;
            }
        }
        assert!((1_500..3_500).contains(&moved), "{moved}");
    }

    #[test]
    fn the_ring_follows_libketama() {
        // libketama's points are the MD5 digests of `host:port-k`, read as little-endian words.
        let digest = md5(b"127.0.0.1:11211-0");
        let first = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let ring = Ketama::new(&["127.0.0.1:11211"]);
        assert_eq!(ring.points.len(), 160);
        assert!(ring.points.iter().any(|&(p, _)| p == first));
        // One server: every key on it.
        assert_eq!(ring.server("anything"), 0);
    }

    #[test]
    fn a_key_past_the_last_point_wraps_to_the_first() {
        let ring = Ketama::new(&servers(2));
        let last = ring.points.last().unwrap().0;
        let first_server = ring.points[0].1;
        // Find a key hashing past the last point (exists: the gap is about 2^32 / 320 wide).
        let key = (0..1_000_000)
            .map(|i| format!("w{i}"))
            .find(|k| points_of(&md5(k.as_bytes()))[0] > last)
            .expect("a key past the last point");
        assert_eq!(ring.server(&key), first_server);
    }
}
