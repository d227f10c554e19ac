//! How functions under `#[memoize]` behave at run time, through the facade.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use memo::memoize;

#[memoize(maxsize = None)]
fn fib_unbounded(n: u64) -> u128 {
    if n < 2 {
        n.into()
    } else {
        fib_unbounded(n - 1) + fib_unbounded(n - 2)
    }
}

#[memoize]
fn fib_default(n: u64) -> u128 {
    if n < 2 {
        n.into()
    } else {
        fib_default(n - 1) + fib_default(n - 2)
    }
}

#[test]
fn recursive_fib_counts_hits_and_misses_as_functools() {
    assert_eq!(
        fib_unbounded(150),
        9_969_216_677_189_303_386_214_405_760_200
    );
    let info = fib_unbounded::cache_info();
    assert_eq!((info.hits, info.misses, info.maxsize), (148, 151, None));
    assert_eq!(info.currsize, 151);

    assert_eq!(fib_default(150), 9_969_216_677_189_303_386_214_405_760_200);
    let info = fib_default::cache_info();
    assert_eq!(
        (info.hits, info.misses, info.maxsize),
        (148, 151, Some(128))
    );
    assert_eq!(info.currsize, 128);
}

static GREET_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn greet(name: &str, punctuation: char) -> String {
    GREET_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("hello {name}{punctuation}")
}

#[test]
fn str_argument_is_looked_up_borrowed_and_stored_owned() {
    assert_eq!(greet("ada", '!'), "hello ada!");
    let owned = String::from("ada");
    assert_eq!(greet(&owned, '!'), "hello ada!");
    assert_eq!(greet("ada", '?'), "hello ada?");
    assert_eq!(greet("bob", '!'), "hello bob!");
    assert_eq!(GREET_CALLS.load(Ordering::SeqCst), 3);
    let info = greet::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 3, 3));
}

#[memoize(maxsize = 16)]
fn total(values: &[u64]) -> u64 {
    values.iter().sum()
}

#[test]
fn slice_argument_is_keyed_by_its_contents() {
    assert_eq!(total(&[1, 2, 3]), 6);
    let values: Vec<u64> = (1..=3).collect();
    assert_eq!(total(&values), 6);
    assert_eq!(total(&[3, 2, 1]), 6);
    assert_eq!(total(&[]), 0);
    let info = total::cache_info();
    assert_eq!((info.hits, info.misses), (1, 3));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Point {
    x: i64,
    y: i64,
}

static DISTANCE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn manhattan(from: &Point, to: Point) -> i64 {
    DISTANCE_CALLS.fetch_add(1, Ordering::SeqCst);
    (from.x - to.x).abs() + (from.y - to.y).abs()
}

#[test]
fn struct_arguments_by_reference_and_by_value() {
    let origin = Point { x: 0, y: 0 };
    assert_eq!(manhattan(&origin, Point { x: 3, y: -4 }), 7);
    assert_eq!(manhattan(&Point { x: 0, y: 0 }, Point { x: 3, y: -4 }), 7);
    assert_eq!(manhattan(&origin, Point { x: 3, y: 4 }), 7);
    assert_eq!(DISTANCE_CALLS.load(Ordering::SeqCst), 2);
    let info = manhattan::cache_info();
    assert_eq!((info.hits, info.misses), (1, 2));
}

#[memoize]
fn area((width, height): (u32, u32), mut scale: u32, _: &str) -> u32 {
    scale *= 2;
    width * height * scale
}

#[test]
fn pattern_arguments_are_keyed_by_their_values() {
    assert_eq!(area((2, 3), 1, "a"), 12);
    assert_eq!(area((2, 3), 1, "a"), 12);
    assert_eq!(area((2, 3), 1, "b"), 12);
    assert_eq!(area((3, 2), 1, "a"), 12);
    let info = area::cache_info();
    assert_eq!((info.hits, info.misses), (1, 3));
}

static PARSE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn parse(text: &str) -> Result<i32, std::num::ParseIntError> {
    PARSE_CALLS.fetch_add(1, Ordering::SeqCst);
    text.parse()
}

#[test]
fn result_caches_only_ok() {
    assert_eq!(parse("42"), Ok(42));
    assert_eq!(parse("42"), Ok(42));
    assert!(parse("forty-two").is_err());
    assert!(parse("forty-two").is_err());
    assert_eq!(PARSE_CALLS.load(Ordering::SeqCst), 3);
    let info = parse::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 3, 1));
}

static READ_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn read_config(key: &str) -> std::io::Result<String> {
    READ_CALLS.fetch_add(1, Ordering::SeqCst);
    match key {
        "home" => Ok("/home/ada".to_owned()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, key)),
    }
}

#[test]
fn io_result_caches_only_ok() {
    assert_eq!(read_config("home").unwrap(), "/home/ada");
    assert_eq!(read_config("home").unwrap(), "/home/ada");
    assert!(read_config("editor").is_err());
    assert!(read_config("editor").is_err());
    assert_eq!(READ_CALLS.load(Ordering::SeqCst), 3);
}

static FIND_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn find_even(values: &[i32]) -> Option<i32> {
    FIND_CALLS.fetch_add(1, Ordering::SeqCst);
    values.iter().copied().find(|v| v % 2 == 0)
}

#[test]
fn option_caches_only_some() {
    assert_eq!(find_even(&[1, 4]), Some(4));
    assert_eq!(find_even(&[1, 4]), Some(4));
    assert_eq!(find_even(&[1, 3]), None);
    assert_eq!(find_even(&[1, 3]), None);
    assert_eq!(FIND_CALLS.load(Ordering::SeqCst), 3);
    let info = find_even::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 3, 1));
}

static NOTHING_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(maxsize = 0)]
fn uncached(n: u8) -> u8 {
    NOTHING_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[test]
fn maxsize_zero_counts_misses_and_caches_nothing() {
    for _ in 0..3 {
        assert_eq!(uncached(7), 7);
    }
    assert_eq!(NOTHING_CALLS.load(Ordering::SeqCst), 3);
    let info = uncached::cache_info();
    assert_eq!(
        (info.hits, info.misses, info.maxsize, info.currsize),
        (0, 3, Some(0), 0)
    );
}

#[memoize(maxsize = 2)]
fn double(n: u32) -> u32 {
    n * 2
}

#[test]
fn bounded_cache_evicts_the_least_recently_used() {
    double(1);
    double(2);
    double(1); // hit: 2 is now the least recently used
    double(3); // evicts 2
    double(1); // hit
    double(2); // miss
    let info = double::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (2, 4, 2));
}

#[memoize]
fn square(n: u64) -> u64 {
    n * n
}

#[test]
fn cache_clear_empties_the_cache_and_zeroes_the_statistics() {
    square(3);
    square(3);
    assert_eq!(square::cache_info().hits, 1);
    square::cache_clear();
    let info = square::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (0, 0, 0));
    square(3);
    assert_eq!(square::cache_info().misses, 1);
}

static ANSWER_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn answer() -> u32 {
    ANSWER_CALLS.fetch_add(1, Ordering::SeqCst);
    42
}

static LOG_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn log_once(message: &str) {
    LOG_CALLS.fetch_add(1, Ordering::SeqCst);
    let _ = message;
}

#[test]
fn functions_without_arguments_or_return_value() {
    assert_eq!(answer(), 42);
    assert_eq!(answer(), 42);
    assert_eq!(ANSWER_CALLS.load(Ordering::SeqCst), 1);
    log_once("a");
    log_once("a");
    log_once("b");
    assert_eq!(LOG_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(log_once::cache_info().hits, 1);
}

#[memoize(maxsize = 8, ttl = "1h 30m")]
fn with_ttl(n: u32) -> u32 {
    n + 1
}

#[test]
fn ttl_entries_are_hits_before_they_expire() {
    assert_eq!(with_ttl(1), 2);
    assert_eq!(with_ttl(1), 2);
    let info = with_ttl::cache_info();
    assert_eq!((info.hits, info.misses), (1, 1));
    assert_eq!(info.ttl, Some(std::time::Duration::from_secs(5400)));
}

static SHARED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[memoize(maxsize = None)]
fn collatz_steps(n: u64) -> u32 {
    SHARED_CALLS.fetch_add(1, Ordering::SeqCst);
    match n {
        1 => 0,
        n if n % 2 == 0 => 1 + collatz_steps(n / 2),
        n => 1 + collatz_steps(3 * n + 1),
    }
}

fn collatz_plain(n: u64) -> u32 {
    match n {
        1 => 0,
        n if n % 2 == 0 => 1 + collatz_plain(n / 2),
        n => 1 + collatz_plain(3 * n + 1),
    }
}

#[test]
fn calls_from_many_threads_return_correct_values() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (1..2_000u64)
                    .map(|i| (i, collatz_steps((i * 7 + t) % 1_999 + 1)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (t, thread) in threads.into_iter().enumerate() {
        for (i, steps) in thread.join().unwrap() {
            assert_eq!(steps, collatz_plain((i * 7 + t as u64) % 1_999 + 1));
        }
    }
    let info = collatz_steps::cache_info();
    // Single-flight: each key's body ran once, however many threads missed it at the same time
    // (the cache is unbounded, so nothing was evicted and computed again).
    assert_eq!(SHARED_CALLS.load(Ordering::SeqCst), info.currsize);
    // A caller that waited for another's value counted a miss without running the body.
    assert!(info.misses >= info.currsize as u64);
    assert!(info.hits > 0);
}

#[memoize]
fn word_counts(text: &str) -> Arc<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_owned()).or_default() += 1;
    }
    Arc::new(counts)
}

#[test]
fn large_values_are_shared_through_an_arc() {
    let first = word_counts("a b a");
    let second = word_counts("a b a");
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first["a"], 2);
}

mod nested {
    pub mod deeper {
        use memo::memoize;

        #[memoize]
        pub fn triple(n: i32) -> i32 {
            n * 3
        }
    }
}

#[test]
fn companions_follow_the_function_into_modules() {
    assert_eq!(nested::deeper::triple(2), 6);
    assert_eq!(nested::deeper::triple::cache_info().misses, 1);
}

#[test]
fn functions_nested_in_a_function_body() {
    #[memoize]
    fn halve(n: u32) -> u32 {
        n / 2
    }
    assert_eq!(halve(8), 4);
    assert_eq!(halve(8), 4);
    assert_eq!(halve::cache_info().hits, 1);
}

#[memoize]
fn r#type(r#in: &str) -> usize {
    r#in.len()
}

#[test]
fn raw_identifiers() {
    assert_eq!(r#type("abc"), 3);
    assert_eq!(r#type("abc"), 3);
    assert_eq!(r#type::cache_info().hits, 1);
}
