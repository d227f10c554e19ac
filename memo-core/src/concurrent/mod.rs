//! The store's concurrent core: everything a lock-free reader and the locked writer share.
//!
//! A [`Shard`] keeps its entries in slots that never move ([`segments`]), found through an
//! open-addressing index of slot ids ([`table`]). Writers take the shard's lock; readers take
//! none. A reader holds its thread's read stripe ([`stripe`]) while it probes the index and
//! clones a value, and records the hit in that stripe's buffer, which writers replay in order.
//!
//! The protocol, in the order a reader and a writer meet:
//! 1. A reader takes its stripe (a SeqCst CAS), then loads the index and probes it (SeqCst).
//! 2. A writer unlinks a slot from the index, issues a SeqCst fence and reads the stripes: a
//!    reader it does not see inside entered after the fence and cannot find the slot.
//! 3. An unlinked slot is *retired*; it is reused only once every stripe held at that moment
//!    has been released. Replaced index tables wait the same way.
//!
//! [`sync`] names the atomics and the mutex, which come from shuttle under `--cfg memo_shuttle`.

pub(crate) mod segments;
pub(crate) mod shard;
pub(crate) mod stripe;
pub(crate) mod sync;
pub(crate) mod table;

pub(crate) use shard::{OnPresent, Shard};
