// A function nested in a block may use the module's types, not the block's: the companion module
// (a module, like any other) cannot see into the block. The error points at the type.
use memo::memoize;

fn main() {
    #[derive(Clone, Hash, PartialEq, Eq)]
    struct Local(u32);

    #[memoize]
    fn get(key: Local) -> u32 {
        key.0
    }

    get(Local(1));
}
