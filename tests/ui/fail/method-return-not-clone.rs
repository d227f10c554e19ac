// A method's return type that is not `Clone`: one error at the return type, none at the call site
// or in the companions.
use memo::memoize;

struct Report {
    lines: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Ledger;

impl Ledger {
    #[memoize]
    fn report(&self, day: u32) -> Report {
        Report {
            lines: vec![day.to_string()],
        }
    }
}

fn main() {
    let _ = Ledger.report(1).lines;
    Ledger.report_cache_prime(1, Report { lines: Vec::new() });
    let _ = Ledger::report_cache_info();
}
