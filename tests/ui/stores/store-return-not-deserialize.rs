use memo::memoize;

#[derive(Clone, serde::Serialize)]
struct Report {
    text: String,
}

#[memoize(store = "shared", ttl = "5m")]
fn report(day: u32) -> Option<Report> {
    Some(Report { text: day.to_string() })
}

fn main() {
    report(1);
    let _ = report::cache_info();
}
