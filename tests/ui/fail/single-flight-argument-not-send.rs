// Waiting callers on other threads share the key being computed: an `Rc` cannot be shared.
use memo::memoize;
use std::rc::Rc;

#[memoize(single_flight = true)]
fn length(text: Rc<str>) -> usize {
    text.len()
}

fn main() {
    let _ = length(Rc::from("abc"));
}
