use std::rc::Rc;

use memo::memoize;

#[memoize]
fn length(text: Rc<str>) -> usize {
    text.len()
}

fn main() {
    length(Rc::from("abc"));
}
