use memo::memoize;

#[derive(Clone)]
struct Report {
    lines: Vec<String>,
}

#[memoize(maxweight = "1MiB")]
fn report(id: u32) -> Report {
    Report {
        lines: vec![id.to_string()],
    }
}

fn main() {
    report(1);
}
