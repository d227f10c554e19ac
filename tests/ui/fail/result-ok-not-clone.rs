use memo::memoize;

struct Report {
    lines: Vec<String>,
}

#[memoize]
fn report(day: u32) -> Result<Report, String> {
    Ok(Report {
        lines: vec![day.to_string()],
    })
}

fn main() {
    let _ = report(1).map(|r| r.lines);
}
