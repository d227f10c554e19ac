use memo::memoize;

#[memoize(maxweight = "64 parsecs")]
fn page(id: u32) -> String {
    id.to_string()
}

fn main() {
    page(1);
}
