//! Patterns stay in the function's body; the cache sees the values.
#![deny(warnings)]

use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Size {
    width: u32,
    height: u32,
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Extra(u8);

#[memoize]
fn area(Size { width, height }: Size, (dx, dy): (u32, u32), mut scale: u32, _: &str, Extra(extra): Extra) -> u32 {
    scale += u32::from(extra);
    (width + dx) * (height + dy) * scale
}

fn main() {
    let size = Size { width: 2, height: 3 };
    assert_eq!(area(size.clone(), (0, 0), 1, "x", Extra(0)), 6);
    assert_eq!(area(size, (0, 0), 1, "x", Extra(0)), 6);
    assert_eq!(area::cache_info().hits, 1);
}
