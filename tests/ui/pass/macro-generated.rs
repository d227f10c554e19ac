//! Functions written by `macro_rules!`, whose types arrive in invisible groups.
#![deny(warnings)]

use memo::memoize;

macro_rules! memoized_identity {
    ($name:ident, $arg:ty, $ret:ty, $size:expr) => {
        #[memoize(maxsize = $size)]
        fn $name(x: $arg) -> $ret {
            x.into()
        }
    };
}

memoized_identity!(widen, u8, u64, 4);
memoized_identity!(maybe, u8, Option<u8>, None);
memoized_identity!(own, &str, String, 0);

fn main() {
    assert_eq!(widen(1), 1);
    assert_eq!(maybe(1), Some(1));
    assert_eq!(own("a"), "a");
    assert_eq!(widen::cache_info().maxsize, Some(4));
    assert_eq!(maybe::cache_info().maxsize, None);
    assert_eq!(own::cache_info().maxsize, Some(0));
}
