//! `memo::caches()`: every memoized function of the process, registered by its first call.
use memo::{memoize, CacheReport};

fn report(suffix: &str) -> Option<CacheReport> {
    memo::caches()
        .into_iter()
        .find(|report| report.function.ends_with(suffix))
}

#[memoize(maxsize = 8)]
fn square(x: u64) -> u64 {
    x * x
}

#[memoize]
fn describe<T: std::fmt::Debug + std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    value: T,
) -> String {
    format!("{value:?}")
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Poly(Vec<i64>);

impl Poly {
    #[memoize(maxsize = 4)]
    fn at(&self, x: i64) -> i64 {
        self.0.iter().rev().fold(0, |acc, c| acc * x + c)
    }
}

struct Parser<T>(std::marker::PhantomData<T>);

impl<T: 'static> Parser<T> {
    #[memoize(ignore = [self])]
    fn parse(&self, text: &str) -> usize {
        text.len() + std::mem::size_of::<T>()
    }
}

#[test]
fn a_function_is_listed_after_its_first_call_with_its_statistics() {
    assert_eq!(report("caches::square"), None, "not called yet");
    square(2);
    square(2);
    square(3);
    let listed = report("caches::square").expect("registered by the first call");
    assert_eq!(listed.function, "caches::square");
    assert_eq!((listed.info.hits, listed.info.misses), (1, 2));
    assert_eq!((listed.info.currsize, listed.info.maxsize), (2, Some(8)));
}

#[test]
fn methods_and_generic_functions_are_one_report_each() {
    let poly = Poly(vec![1, 2]);
    poly.at(3);
    poly.at(3);
    let at = report("::Poly::at").expect("a method is listed");
    assert_eq!(at.function, "caches::Poly::at");
    assert_eq!((at.info.hits, at.info.misses), (1, 1));

    describe(1u8);
    describe("one");
    describe("one");
    let generic = report("::describe").expect("a generic function is listed");
    assert_eq!(generic.function, "caches::describe");
    assert_eq!(
        (generic.info.hits, generic.info.misses),
        (1, 2),
        "summed over instantiations"
    );

    Parser::<u8>(std::marker::PhantomData).parse("ab");
    Parser::<u16>(std::marker::PhantomData).parse("ab");
    Parser::<u16>(std::marker::PhantomData).parse("ab");
    let parsers: Vec<CacheReport> = memo::caches()
        .into_iter()
        .filter(|report| report.function.contains("Parser"))
        .collect();
    assert_eq!(
        parsers.len(),
        1,
        "one report for every Self type: {parsers:?}"
    );
    assert_eq!(parsers[0].function, "caches::Parser::parse");
    assert_eq!((parsers[0].info.hits, parsers[0].info.misses), (1, 2));
}

#[test]
fn clearing_a_cache_shows_in_its_report() {
    #[memoize]
    fn cleared(x: u8) -> u8 {
        x
    }
    cleared(1);
    cleared::cache_clear();
    let listed = report("::cleared").expect("still listed after a clear");
    assert_eq!(
        (listed.info.hits, listed.info.misses, listed.info.currsize),
        (0, 0, 0)
    );
}

#[cfg(feature = "serde")]
#[test]
fn reports_serialize() {
    #[memoize(maxsize = 3, ttl = "1s")]
    fn serialized(x: u8) -> u8 {
        x
    }
    serialized(1);
    let listed = report("::serialized").expect("listed");
    let json = serde_json::to_value(&listed).expect("serializes");
    assert_eq!(json["function"], "caches::serialized");
    assert_eq!(json["info"]["misses"], 1);
    assert_eq!(json["info"]["maxsize"], 3);
    assert_eq!(json["info"]["policy"], "lru");
    assert_eq!(json["info"]["ttl"]["secs"], 1);
}

#[cfg(feature = "persistent")]
#[test]
fn functions_with_a_store_are_listed() {
    use memo::stores::{self, PersistentStore};

    #[memoize(store = "caches-test-sqlite")]
    fn stored(x: u32) -> u32 {
        x + 1
    }

    struct Rates;
    #[memoize]
    impl Rates {
        #[memoize(store = "caches-test-sqlite")]
        fn rate(from: String) -> u32 {
            from.len() as u32
        }
    }

    let file = std::env::temp_dir().join(format!("memo-caches-{}.sqlite", std::process::id()));
    let store = PersistentStore::open(&file).expect("a fresh SQLite file opens");
    stores::register("caches-test-sqlite", store);
    stored(1);
    stored(1);
    Rates::rate("EUR".to_string());
    let listed = report("::stored").expect("a function with a store is listed");
    assert_eq!((listed.info.hits, listed.info.misses), (1, 1));
    let rate = report("::Rates::rate").expect("an associated function with a store is listed");
    assert_eq!((rate.info.hits, rate.info.misses), (0, 1));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
