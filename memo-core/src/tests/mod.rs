//! Unit tests of the store against simple reference models, with `validate()` after every step.

mod jitter;
mod listener;
mod model;
mod policies;
mod reentrant;
#[cfg(memo_shuttle)]
mod shuttle;
mod stress;
mod weight;
