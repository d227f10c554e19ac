//! The I/O of `async fn`s with a store: the store's blocking calls run on a few threads of the
//! store's own, and the caller awaits a reply, so an executor thread never waits for a server.
//! No runtime is involved (the reply is a plain `Future` woken from the I/O thread), so this
//! works on tokio, async-std, smol or `futures::executor` alike, and needs no feature. (With
//! feature `tokio`, a Redis store's calls go through its async connection instead:
//! `redis_async`.)
//!
//! The queue is bounded: when the I/O threads are that far behind (a hung server with more
//! callers than the breaker has yet turned away), a lookup is a miss and a write is dropped, at
//! once. A call waits at most the store's own timeouts once it runs; while an outage is under
//! way, queued calls skip the store as soon as they are taken.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// Threads per store: calls in flight at once when the server is slow.
const THREADS: usize = 4;
/// Calls queued per store beyond those in flight.
const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// The I/O threads of one store; they end when it is dropped (its queue closes).
pub(crate) struct IoThreads {
    queue: SyncSender<Job>,
}

impl IoThreads {
    pub fn start(store: &str) -> Option<IoThreads> {
        let (queue, jobs) = mpsc::sync_channel::<Job>(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut started = 0;
        for n in 0..THREADS {
            let jobs: Arc<Mutex<Receiver<Job>>> = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("memo-io-{store}-{n}"))
                .spawn(move || loop {
                    let job = jobs.lock().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the store was dropped
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(error) => tracing::warn!(store, %error, "cannot start an I/O thread"),
            }
        }
        (started > 0).then_some(IoThreads { queue })
    }

    /// Queues `job`; `false` (and `job` dropped) if the queue is full.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        match self.queue.try_send(Box::new(job)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

struct Slot<T> {
    value: Option<T>,
    done: bool,
    waker: Option<Waker>,
}

/// The reply to one call: `None` if the call was dropped without answering.
pub(crate) struct Reply<T>(Arc<Mutex<Slot<T>>>);

/// Where the I/O thread answers; dropping it unanswered wakes the caller with `None`.
pub(crate) struct Answer<T>(Option<Arc<Mutex<Slot<T>>>>);

/// A reply and the answer that completes it.
pub(crate) fn reply<T>() -> (Reply<T>, Answer<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        done: false,
        waker: None,
    }));
    (Reply(Arc::clone(&slot)), Answer(Some(slot)))
}

impl<T> Answer<T> {
    pub fn send(mut self, value: T) {
        if let Some(slot) = self.0.take() {
            finish(&slot, Some(value));
        }
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            finish(&slot, None);
        }
    }
}

fn finish<T>(slot: &Mutex<Slot<T>>, value: Option<T>) {
    let waker = {
        let mut slot = slot.lock();
        slot.value = value;
        slot.done = true;
        slot.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Future for Reply<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock();
        if slot.done {
            return Poll::Ready(slot.value.take());
        }
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll<T>(reply: &mut Reply<T>, waker: &Waker) -> Poll<Option<T>> {
        Pin::new(reply).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_reply_is_woken_by_its_answer_or_by_its_drop() {
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(Arc::clone(&count));
        let (mut reply, answer) = reply::<u8>();
        assert_eq!(poll(&mut reply, &waker), Poll::Pending);
        let threads = IoThreads::start("unit").unwrap();
        assert!(threads.submit(move || answer.send(7)));
        while poll(&mut reply, &waker).is_pending() {
            std::thread::yield_now();
        }
        let (mut dropped, answer) = super::reply::<u8>();
        assert_eq!(poll(&mut dropped, &waker), Poll::Pending);
        drop(answer);
        assert_eq!(poll(&mut dropped, &waker), Poll::Ready(None));
        assert!(count.0.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let threads = IoThreads::start("unit-full").unwrap();
        let (gate, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        for _ in 0..THREADS {
            let wait = Arc::clone(&wait);
            assert!(threads.submit(move || {
                let _ = wait.lock().recv();
            }));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let queued = (0..QUEUE + 10).filter(|_| threads.submit(|| {})).count();
        assert!((QUEUE..QUEUE + THREADS).contains(&queued), "{queued}");
        drop(gate);
    }
}
