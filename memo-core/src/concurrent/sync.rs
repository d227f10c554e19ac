//! The synchronization primitives of the store's concurrent core. Normally std's atomics and
//! parking_lot's mutex; under `--cfg memo_shuttle` the same names come from shuttle, whose
//! scheduler then explores the interleavings of the tests in `tests/shuttle.rs`.

#[cfg(not(memo_shuttle))]
pub(crate) use std::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering};

#[cfg(memo_shuttle)]
pub(crate) use shuttle::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// A mutex whose `lock` returns the guard directly (parking_lot's signature).
#[cfg(not(memo_shuttle))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

/// A mutex whose `lock` returns the guard directly (parking_lot's signature).
#[cfg(memo_shuttle)]
pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

#[cfg(memo_shuttle)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(shuttle::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> shuttle::sync::MutexGuard<'_, T> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn try_lock(&self) -> Option<shuttle::sync::MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        match self.0.get_mut() {
            Ok(value) => value,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A small number that stays the same for the life of the calling thread: threads created one
/// after the other get consecutive numbers, so a few threads land on distinct read stripes.
#[inline]
pub(crate) fn thread_index() -> usize {
    use std::cell::Cell;

    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[cfg(not(memo_shuttle))]
    std::thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    #[cfg(memo_shuttle)]
    shuttle::thread_local! {
        static INDEX: Cell<usize> = Cell::new(usize::MAX);
    }

    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            index.set(i);
        }
        i
    })
}

/// Lets other threads run while a writer waits for a reader's few instructions.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(memo_shuttle))]
    std::thread::yield_now();
    #[cfg(memo_shuttle)]
    shuttle::thread::yield_now();
}
