//! The companion module has the function's visibility, and its functions are reachable from
//! wherever the function is.
#![deny(warnings)]

mod outer {
    pub mod inner {
        use memo::memoize;

        #[memoize]
        pub fn public(n: u32) -> u32 {
            n
        }

        #[memoize]
        pub(crate) fn crate_wide(n: u32) -> u32 {
            n
        }

        #[memoize]
        pub(super) fn parent_only(n: u32) -> u32 {
            n
        }

        #[memoize]
        pub(in crate::outer) fn in_path(n: u32) -> u32 {
            n
        }

        #[memoize]
        fn private(n: u32) -> u32 {
            n
        }

        pub fn use_private() -> u64 {
            private(1);
            private::cache_info().misses
        }
    }

    pub fn use_restricted() -> u64 {
        inner::parent_only(1);
        inner::in_path(1);
        inner::parent_only::cache_info().misses + inner::in_path::cache_info().misses
    }
}

fn main() {
    outer::inner::public(1);
    outer::inner::crate_wide(1);
    let total = outer::inner::public::cache_info().misses
        + outer::inner::crate_wide::cache_info().misses
        + outer::use_restricted()
        + outer::inner::use_private();
    assert_eq!(total, 5);
}
