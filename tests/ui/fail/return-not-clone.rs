use memo::memoize;

struct Report {
    lines: Vec<String>,
}

#[memoize]
fn report(day: u32) -> Report {
    Report {
        lines: vec![day.to_string()],
    }
}

fn main() {
    let _ = report(1).lines;
    let _ = report::cache_info();
}
