//! Intrusive doubly linked lists over slot numbers: one `Links` arena holds a `Link` per slot, and
//! any number of `Queue`s thread through it (each slot in at most one queue of an arena).

/// No slot.
pub(crate) const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// The per-slot links of one family of queues.
#[derive(Debug, Default)]
pub(crate) struct Links {
    links: Vec<Link>,
}

/// One list threaded through a [`Links`] arena: front is the most recent end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue {
    head: u32,
    tail: u32,
    len: usize,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl Links {
    #[inline]
    fn ensure(&mut self, slot: u32) {
        let need = slot as usize + 1;
        if self.links.len() < need {
            self.links.resize(need, UNLINKED);
        }
    }

    /// The slot before `slot` (toward the front) in its queue.
    #[inline]
    pub(crate) fn prev(&self, slot: u32) -> Option<u32> {
        let prev = self.links[slot as usize].prev;
        (prev != NIL).then_some(prev)
    }

    /// Forgets every link (every queue using this arena must be reset too).
    pub(crate) fn clear(&mut self) {
        self.links.clear();
    }
}

impl Queue {
    /// How many slots are in the queue (tests only).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the queue holds no slot.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most recently pushed-to-front slot.
    pub(crate) fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// The least recent slot.
    pub(crate) fn back(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    #[inline]
    pub(crate) fn push_front(&mut self, a: &mut Links, slot: u32) {
        a.ensure(slot);
        a.links[slot as usize] = Link {
            prev: NIL,
            next: self.head,
        };
        if self.head != NIL {
            a.links[self.head as usize].prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
        self.len += 1;
    }

    #[inline]
    pub(crate) fn unlink(&mut self, a: &mut Links, slot: u32) {
        let Link { prev, next } = a.links[slot as usize];
        if prev != NIL {
            a.links[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            a.links[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        a.links[slot as usize] = UNLINKED;
        self.len -= 1;
    }

    /// Moves `slot` (in this queue) to the front: the replay of a hit, so kept to the links
    /// that change (no length or arena bookkeeping).
    #[inline]
    pub(crate) fn move_to_front(&mut self, a: &mut Links, slot: u32) {
        let Link { prev, next } = a.links[slot as usize];
        if prev == NIL {
            return; // the front already
        }
        a.links[prev as usize].next = next;
        if next != NIL {
            a.links[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        // `slot` was not the front, so the queue has a front other than it.
        a.links[self.head as usize].prev = slot;
        a.links[slot as usize] = Link {
            prev: NIL,
            next: self.head,
        };
        self.head = slot;
    }

    /// Moves each of `slots` that is in this queue to the front, in order: the replay of a
    /// buffer of hits. A slot in no queue (its links were reset by `unlink`, `relocate` or
    /// `clear`, or it never had any) is skipped, so the caller needs no liveness check: an
    /// unlinked slot reads as `prev == NIL`, like the front, which needs no move either.
    /// (A slot in another queue of the same arena must not be passed.)
    #[inline]
    pub(crate) fn move_all_to_front(&mut self, a: &mut Links, slots: &[u64]) {
        let links = &mut a.links[..];
        let mut head = self.head;
        for &slot in slots {
            let slot = slot as u32;
            let Some(&Link { prev, next }) = links.get(slot as usize) else {
                continue; // past the arena: never linked since it was cleared
            };
            if prev == NIL {
                continue; // the front already, or in no queue
            }
            links[prev as usize].next = next;
            if next != NIL {
                links[next as usize].prev = prev;
            } else {
                self.tail = prev;
            }
            // `slot` is linked and not the front, so the queue has a front other than it.
            links[head as usize].prev = slot;
            links[slot as usize] = Link {
                prev: NIL,
                next: head,
            };
            head = slot;
        }
        self.head = head;
    }

    #[inline]
    pub(crate) fn pop_back(&mut self, a: &mut Links) -> Option<u32> {
        let slot = self.back()?;
        self.unlink(a, slot);
        Some(slot)
    }

    pub(crate) fn pop_front(&mut self, a: &mut Links) -> Option<u32> {
        let slot = self.front()?;
        self.unlink(a, slot);
        Some(slot)
    }

    /// The slot in this queue at `from` now lives at `to` (which held nothing).
    pub(crate) fn relocate(&mut self, a: &mut Links, from: u32, to: u32) {
        a.ensure(to.max(from));
        let link = a.links[from as usize];
        a.links[to as usize] = link;
        a.links[from as usize] = UNLINKED;
        if link.prev != NIL {
            a.links[link.prev as usize].next = to;
        } else {
            self.head = to;
        }
        if link.next != NIL {
            a.links[link.next as usize].prev = to;
        } else {
            self.tail = to;
        }
    }

    /// The slots from front to back.
    #[cfg(test)]
    pub(crate) fn iter<'a>(&self, a: &'a Links) -> impl Iterator<Item = u32> + 'a + use<'a> {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            (cur != NIL).then(|| {
                let slot = cur;
                cur = a.links[slot as usize].next;
                slot
            })
        })
    }

    /// Walks the queue both ways and checks the links agree with `len` (tests only).
    #[cfg(test)]
    pub(crate) fn validate(&self, a: &Links) -> Vec<u32> {
        let forward: Vec<u32> = self.iter(a).collect();
        assert_eq!(forward.len(), self.len, "queue length");
        let mut back = Vec::with_capacity(self.len);
        let mut cur = self.tail;
        while cur != NIL {
            back.push(cur);
            cur = a.links[cur as usize].prev;
        }
        back.reverse();
        assert_eq!(forward, back, "forward and backward walks differ");
        forward
    }
}

/// `N` circular doubly linked lists over slot numbers, each through its own sentinel: no
/// branch for an end of a list. The links of sentinel `q` are at index `q`, those of slot `s` at
/// `s + N`; each slot is in at most one list, which the caller knows.
#[derive(Debug)]
pub(crate) struct Rings<const N: usize> {
    links: Vec<Link>,
    lens: [usize; N],
}

impl<const N: usize> Default for Rings<N> {
    fn default() -> Self {
        Rings {
            links: Self::sentinels(),
            lens: [0; N],
        }
    }
}

impl<const N: usize> Rings<N> {
    /// Every list empty: each sentinel its own neighbour.
    fn sentinels() -> Vec<Link> {
        (0..N as u32).map(|q| Link { prev: q, next: q }).collect()
    }

    #[inline(always)]
    fn at(slot: u32) -> usize {
        slot as usize + N
    }

    /// How many slots list `q` holds.
    #[inline(always)]
    pub(crate) fn len(&self, q: usize) -> usize {
        self.lens[q]
    }

    /// The least recent slot of list `q`.
    #[inline(always)]
    pub(crate) fn back(&self, q: usize) -> Option<u32> {
        let back = self.links[q].prev;
        (back as usize >= N).then(|| back - N as u32)
    }

    /// The most recent slot of list `q`.
    #[cfg(test)]
    pub(crate) fn front(&self, q: usize) -> Option<u32> {
        let front = self.links[q].next;
        (front as usize >= N).then(|| front - N as u32)
    }

    /// The slot before `slot` (toward the front) in its list.
    pub(crate) fn prev(&self, slot: u32) -> Option<u32> {
        let prev = self.links[Self::at(slot)].prev;
        (prev as usize >= N).then(|| prev - N as u32)
    }

    /// Puts `slot`, in no list, at the front of list `q`.
    #[inline(always)]
    pub(crate) fn push_front(&mut self, q: usize, slot: u32) {
        let at = Self::at(slot);
        if self.links.len() <= at {
            self.links.resize(at + 1, UNLINKED);
        }
        let next = self.links[q].next;
        self.links[at] = Link {
            prev: q as u32,
            next,
        };
        self.links[next as usize].prev = at as u32;
        self.links[q].next = at as u32;
        self.lens[q] += 1;
    }

    /// Takes `slot` out of list `q`, which holds it.
    #[inline(always)]
    pub(crate) fn unlink(&mut self, q: usize, slot: u32) {
        let Link { prev, next } = self.links[Self::at(slot)];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        self.lens[q] -= 1;
    }

    /// Moves `slot`, in list `q`, to its front.
    #[inline(always)]
    pub(crate) fn move_to_front(&mut self, q: usize, slot: u32) {
        let at = Self::at(slot);
        let Link { prev, next } = self.links[at];
        if prev as usize == q {
            return; // the front already
        }
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        let front = self.links[q].next;
        self.links[at] = Link {
            prev: q as u32,
            next: front,
        };
        self.links[front as usize].prev = at as u32;
        self.links[q].next = at as u32;
    }

    /// The slot at `from` (in a list) now lives at `to` (in none).
    pub(crate) fn relocate(&mut self, from: u32, to: u32) {
        let (from, to) = (Self::at(from), Self::at(to));
        if self.links.len() <= to {
            self.links.resize(to + 1, UNLINKED);
        }
        let link = self.links[from];
        self.links[to] = link;
        self.links[from] = UNLINKED;
        self.links[link.prev as usize].next = to as u32;
        self.links[link.next as usize].prev = to as u32;
    }

    /// Empties every list.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// List `q`'s slots, front to back, checked against the backward walk and its length
    /// (tests only).
    #[cfg(test)]
    pub(crate) fn validate(&self, q: usize) -> Vec<u32> {
        let walk = |step: fn(&Link) -> u32| {
            let mut slots = Vec::new();
            let mut at = step(&self.links[q]);
            while at as usize != q {
                assert!(at as usize >= N, "a sentinel inside list {q}");
                slots.push(at - N as u32);
                at = step(&self.links[at as usize]);
            }
            slots
        };
        let forward = walk(|l| l.next);
        let mut backward = walk(|l| l.prev);
        backward.reverse();
        assert_eq!(forward, backward, "forward and backward walks differ");
        assert_eq!(forward.len(), self.lens[q], "list length");
        forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replayed run of hits moves each linked slot to the front, in order, and skips slots
    /// that are in no queue: unlinked ones, and ones past the arena (never linked since a
    /// clear), as the replay of hits on retired slots needs.
    #[test]
    fn moving_a_run_to_the_front_skips_slots_in_no_queue() {
        let mut a = Links::default();
        let mut q = Queue::default();
        for slot in 0..6 {
            q.push_front(&mut a, slot);
        }
        q.unlink(&mut a, 2);
        // From [5, 4, 3, 1, 0]: 0 (the back) moves, 2 is unlinked, 5 moves back to the front,
        // 99 is past the arena, 3 moves, and then is the front already.
        q.move_all_to_front(&mut a, &[0, 2, 5, 99, 3, 3]);
        assert_eq!(q.validate(&a), [3, 5, 0, 4, 1]);
        assert_eq!((q.front(), q.back()), (Some(3), Some(1)));
        // A one-slot queue, and an emptied one.
        let mut one = Queue::default();
        let mut b = Links::default();
        one.push_front(&mut b, 7);
        one.move_all_to_front(&mut b, &[7, 7]);
        assert_eq!(one.validate(&b), [7]);
        one.unlink(&mut b, 7);
        one.move_all_to_front(&mut b, &[7]);
        assert!(one.is_empty() && one.validate(&b).is_empty());
    }

    /// Rings keep each list's order and length through pushes, moves to the front, unlinks
    /// and relocations, with no end to special-case.
    #[test]
    fn rings_hold_their_lists() {
        let mut r: Rings<2> = Rings::default();
        for slot in 0..5u32 {
            r.push_front(slot as usize % 2, slot);
        }
        assert_eq!(r.validate(0), [4, 2, 0]);
        assert_eq!(r.validate(1), [3, 1]);
        r.move_to_front(0, 0);
        r.move_to_front(0, 0);
        r.move_to_front(1, 3);
        assert_eq!(r.validate(0), [0, 4, 2]);
        assert_eq!(
            (r.front(0), r.back(0), r.prev(2), r.prev(0)),
            (Some(0), Some(2), Some(4), None)
        );
        r.unlink(0, 4);
        r.relocate(2, 9);
        assert_eq!(r.validate(0), [0, 9]);
        r.unlink(0, 0);
        r.unlink(0, 9);
        assert_eq!((r.validate(0), r.back(0), r.front(0)), (vec![], None, None));
        r.unlink(1, 3);
        r.unlink(1, 1);
        assert!(r.validate(1).is_empty());
        r.push_front(1, 7);
        r.clear();
        assert!(r.validate(0).is_empty() && r.validate(1).is_empty());
    }
}
