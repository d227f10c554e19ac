//! Checked (`cargo check`) by tests/coexist.rs: an app that uses its own redis, rusqlite,
//! hashbrown and parking_lot beside memo with every store, so the two sets of types and links
//! must live in one build.

use memo::memoize;

#[memoize(store = "shared", ttl = "60s")]
fn price(sku: u32) -> u64 {
    u64::from(sku) * 3
}

#[memoize(store = "shared")]
async fn stock(sku: u32) -> Option<u32> {
    sku.checked_sub(1)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The app's own SQLite (rusqlite 0.43, bundled) beside memo's SQLite store: one libsqlite3.
    let db = rusqlite::Connection::open_in_memory()?;
    let one: i64 = db.query_row("SELECT 1", [], |row| row.get(0))?;
    let path = std::env::temp_dir().join("coexist-app.sqlite");
    memo::stores::register("shared", memo::stores::PersistentStore::open(&path)?);
    // The app's own redis client (redis 1.8) beside memo's Redis and memcached stores.
    let client = redis::Client::open("redis://127.0.0.1:1/")?;
    let _redis = memo::stores::RedisStore::connect("redis://127.0.0.1:1/")?;
    let _memcached = memo::stores::MemcachedStore::connect("127.0.0.1:1")?;
    // hashbrown 0.17 and parking_lot 0.13, the versions memo uses inside.
    let mut seen: hashbrown::HashMap<u32, u64> = hashbrown::HashMap::new();
    let lock = parking_lot::Mutex::new(0u64);
    seen.insert(7, price(7));
    *lock.lock() += seen[&7] + one as u64;
    drop(client);
    drop(stock(3));
    Ok(())
}
