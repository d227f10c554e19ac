//! Types named through `self::`, `super::` and `crate::` resolve in the companion module too.
#![deny(warnings)]

#[derive(Clone, Hash, PartialEq, Eq)]
pub struct Top(u32);

mod parent {
    #[derive(Clone, Hash, PartialEq, Eq)]
    pub struct Here(pub u32);

    pub mod child {
        use memo::memoize;

        #[memoize]
        pub fn sum(a: self::super::Here, b: &super::super::Top, c: crate::Top) -> std::borrow::Cow<'static, str> {
            (a.0 + b.0 + c.0).to_string().into()
        }

        #[memoize]
        pub fn labelled(label: &'static str, here: &self::Local) -> Box<str> {
            format!("{label}{}", here.0).into()
        }

        #[derive(Clone, Hash, PartialEq, Eq)]
        pub struct Local(pub u8);
    }
}

fn main() {
    use parent::child;
    assert_eq!(child::sum(parent::Here(1), &Top(2), Top(3)), "6");
    assert_eq!(&*child::labelled("x", &child::Local(1)), "x1");
}
