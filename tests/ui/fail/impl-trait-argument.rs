use memo::memoize;

#[memoize]
fn length(text: impl AsRef<str>) -> usize {
    text.as_ref().len()
}

fn main() {
    length("abc");
}
