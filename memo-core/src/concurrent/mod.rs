//! The store's concurrent core: everything a lock-free reader and the locked writer share.
//!
//! A [`Shard`] keeps its entries in slots that never move ([`segments`]), found through an
//! open-addressing index of slot ids ([`table`]). Writers take the shard's lock; readers take
//! none. A reader holds its thread's read stripe ([`stripe`]) while it probes the index and
//! clones a value, and records the hit in that stripe's buffer, which writers replay in order.
//!
//! The protocol (hazard-pointer protection folded into the stripe's lock word):
//! 1. A reader takes its stripe with a SeqCst CAS that announces the low 32 bits of the hash it
//!    looks up, then loads the index and probes it (SeqCst loads).
//! 2. At its first candidate it announces that slot alone (a plain store: the protected set only
//!    shrinks); a later candidate is announced with a SeqCst swap, then checked to be still in
//!    its bucket of the current table before its key is read.
//! 3. A writer unlinks a slot from the index (it is *retired*), issues a SeqCst fence and reads
//!    the stripes: it reuses every retired slot not announced (by id, or by its hash bits for a
//!    reader that has not named its slot yet). Readers that entered after the fence cannot
//!    find the slot. More held back than there are stripes means readers between steps 1 and 2
//!    (no user code runs there): the writer yields until they move on.
//! 4. A replaced index table is freed once every stripe held at the swap has been released
//!    (tables only grow, and `clear` empties the table in place while an older one is pending).
//!
//! 5. A lookup that cannot take its stripe (another thread holds it, or its own thread does,
//!    looking the cache up again from a `Clone`) finds its entry under the lock, *pins* the
//!    slot there ([`pins`]), and clones after releasing the lock: no user `Clone` runs under
//!    the lock on a hit, so a slow one stalls no writer and a re-entrant one cannot deadlock.
//!    Reclaiming sets pinned slots aside.
//!
//! So a stalled reader holds back one slot, and a shard's slots stay within its capacity plus
//! `RESERVE` plus one per stripe plus at most `PINS` pinned ones.
//!
//! [`sync`] names the atomics and the mutex, which come from shuttle under `--cfg memo_shuttle`.

pub(crate) mod expiry;
pub(crate) mod pins;
pub(crate) mod segments;
pub(crate) mod shard;
pub(crate) mod stripe;
pub(crate) mod sync;
pub(crate) mod table;

pub(crate) use shard::{OnPresent, Shard, ShardConfig};
