use memo::memoize;

#[memoize]
fn double<T: Copy + std::ops::Add<Output = T>>(x: T) -> T {
    x + x
}

fn main() {
    double(1);
}
