//! The one buffer between the HTTP front end and the writer.
//!
//! A bounded crossbeam channel, counted in events. Producers reserve room for
//! all their events before sending any, so a batch request is enqueued whole
//! or not at all, and a full queue is known at once instead of waited on.
//! A request's events travel as one channel item, so a 100-event batch costs
//! one send and one receive, not a hundred.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use std::vec;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::event::Event;

/// Set in [`Queue::state`] once the queue takes no more events.
const CLOSED: usize = 1 << (usize::BITS - 1);
/// How often a waiting receiver checks whether the queue was closed.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// Why events were not enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// There is not room for all of them right now.
    #[error("the queue is full")]
    Full,
    /// There never will be: more events than the queue holds.
    #[error("more events than the queue's capacity")]
    TooMany,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Closed,
}

/// What the writer got from [`Queue::recv_deadline`].
#[derive(Debug)]
pub enum Recv {
    /// The next event.
    Event(Event),
    /// Nothing arrived before the deadline.
    Timeout,
    /// The queue is closed and every reserved event has been received.
    Drained,
}

/// A bounded, closable, multi-producer queue of events.
#[derive(Debug)]
pub struct Queue {
    tx: Sender<Vec<Event>>,
    rx: Receiver<Vec<Event>>,
    /// The rest of the item the writer is taking events from. Only the
    /// writer locks it, so the lock is never contended.
    current: Mutex<vec::IntoIter<Event>>,
    /// Events reserved by producers and not yet received by the writer
    /// (whether still in the channel or in `current`), plus the [`CLOSED`] bit.
    state: AtomicUsize,
    capacity: usize,
    /// Memory held by those events ([`Event::queued_bytes`]): counting
    /// events alone would let a few huge ones exhaust memory.
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Events acknowledged and not yet written: queued, or taken by the
    /// writer for a statement it has not written yet.
    unwritten: AtomicUsize,
    /// Rows of the statement the writer is writing right now, if any.
    in_flight: AtomicUsize,
    /// Set when shutdown gives up on the output: the writer starts no more writes.
    abandoned: AtomicBool,
}

impl Queue {
    /// A queue holding at most `capacity` events, of any size.
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, usize::MAX / 2)
    }

    /// A queue holding at most `capacity` events and `max_bytes` of them.
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        let capacity = capacity.clamp(1, CLOSED - 1);
        // Every item holds at least one event, so `capacity` items always fit.
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Queue {
            tx,
            rx,
            current: Mutex::new(Vec::new().into_iter()),
            state: AtomicUsize::new(0),
            capacity,
            bytes: AtomicUsize::new(0),
            max_bytes: max_bytes.min(usize::MAX / 2),
            unwritten: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Enqueues every event, or none of them.
    pub fn push_all(&self, events: Vec<Event>) -> Result<(), EnqueueError> {
        let n = events.len();
        let size: usize = events.iter().map(Event::queued_bytes).sum();
        if n > self.capacity || size > self.max_bytes {
            return Err(EnqueueError::TooMany);
        }
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            if current & CLOSED != 0 {
                return Err(EnqueueError::Closed);
            }
            if current + n > self.capacity {
                return Err(EnqueueError::Full);
            }
            match self.state.compare_exchange_weak(
                current,
                current + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if self.bytes.fetch_add(size, Ordering::AcqRel) + size > self.max_bytes {
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            self.state.fetch_sub(n, Ordering::AcqRel);
            return Err(EnqueueError::Full);
        }
        self.unwritten.fetch_add(n, Ordering::AcqRel);
        // The reservation guarantees room, and the queue owns a receiver, so
        // this send neither blocks nor fails.
        if n > 0 {
            let _ = self.tx.try_send(events);
        }
        Ok(())
    }

    /// Enqueues one event.
    pub fn push(&self, event: Event) -> Result<(), EnqueueError> {
        self.push_all(vec![event])
    }

    /// Waits until `deadline` for the next event. Returns [`Recv::Drained`]
    /// promptly once the queue is closed and empty, whatever the deadline.
    pub fn recv_deadline(&self, deadline: Instant) -> Recv {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(event) = current.next() {
            self.taken(&event);
            return Recv::Event(event);
        }
        loop {
            let slice = deadline.min(Instant::now() + CLOSE_POLL);
            match self.rx.recv_deadline(slice) {
                Ok(events) => {
                    *current = events.into_iter();
                    if let Some(event) = current.next() {
                        self.taken(&event);
                        return Recv::Event(event);
                    }
                    // Empty items are never sent; treat one as a spurious wake.
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.state.load(Ordering::Acquire) == CLOSED {
                        return Recv::Drained;
                    }
                    if Instant::now() >= deadline {
                        return Recv::Timeout;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Recv::Drained,
            }
        }
    }

    /// Takes the next event if one is already waiting.
    pub fn try_recv(&self) -> Option<Event> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let event = match current.next() {
            Some(event) => event,
            None => {
                *current = self.rx.try_recv().ok()?.into_iter();
                current.next()?
            }
        };
        self.taken(&event);
        Some(event)
    }

    /// Releases what `event` held once the writer has it.
    fn taken(&self, event: &Event) {
        self.bytes.fetch_sub(event.queued_bytes(), Ordering::AcqRel);
        self.state.fetch_sub(1, Ordering::AcqRel);
    }

    /// Memory held by the queued events, as [`Event::queued_bytes`] counts it.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Events acknowledged and not yet written: queued, or taken by the
    /// writer for a statement it has not written yet.
    pub fn unwritten(&self) -> usize {
        self.unwritten.load(Ordering::SeqCst)
    }

    /// The writer is about to write a statement of `rows` rows (0: it is
    /// done). Returns false if shutdown has given up on the output, in
    /// which case it must not write.
    pub fn begin_write(&self, rows: usize) -> bool {
        self.in_flight.store(rows, Ordering::SeqCst);
        if self.abandoned.load(Ordering::SeqCst) {
            self.in_flight.store(0, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The writer has written a statement of `rows` rows.
    pub fn written(&self, rows: usize) {
        self.unwritten.fetch_sub(rows, Ordering::SeqCst);
        self.in_flight.store(0, Ordering::SeqCst);
    }

    /// Gives up on the output: the writer starts no more writes. Returns the
    /// events acknowledged and not written, and how many of them are in a
    /// statement being written right now, which may yet reach the output
    /// whole or in part.
    pub fn abandon(&self) -> (usize, usize) {
        self.abandoned.store(true, Ordering::SeqCst);
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        (self.unwritten(), in_flight)
    }

    /// Stops accepting events. Those already accepted stay to be drained.
    pub fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Whether [`Queue::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Events accepted and not yet taken by the writer.
    pub fn depth(&self) -> usize {
        self.state.load(Ordering::Acquire) & !CLOSED
    }

    /// The most events the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event() -> Event {
        Event::sample("e")
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(10)
    }

    #[test]
    fn full_queue_refuses_without_blocking() {
        let q = Queue::new(2);
        q.push(event()).expect("room");
        q.push(event()).expect("room");
        assert_eq!(q.push(event()), Err(EnqueueError::Full));
        assert_eq!(q.depth(), 2);
    }

    #[test]
    fn batch_is_all_or_nothing() {
        let q = Queue::new(3);
        q.push(event()).expect("room");
        assert_eq!(
            q.push_all(vec![event(), event(), event()]),
            Err(EnqueueError::Full)
        );
        assert_eq!(q.depth(), 1, "nothing of the refused batch went in");
        q.push_all(vec![event(), event()]).expect("exactly fits");
        assert_eq!(q.depth(), 3);
    }

    #[test]
    fn the_byte_bound_refuses_even_when_there_is_room_for_more_events() {
        let one = event().queued_bytes();
        let q = Queue::with_max_bytes(100, one * 2);
        q.push(event()).expect("room");
        q.push(event()).expect("room");
        assert_eq!(q.push(event()), Err(EnqueueError::Full));
        assert_eq!(q.depth(), 2, "the refused event left no reservation");
        assert_eq!(q.bytes(), one * 2);
        assert!(q.try_recv().is_some());
        assert_eq!(q.bytes(), one);
        q.push(event()).expect("room again");
        assert_eq!(
            q.push_all(vec![event(), event(), event()]),
            Err(EnqueueError::TooMany),
            "more bytes than the queue ever holds"
        );
    }

    #[test]
    fn batch_larger_than_capacity_is_too_many() {
        let q = Queue::new(2);
        assert_eq!(
            q.push_all(vec![event(), event(), event()]),
            Err(EnqueueError::TooMany)
        );
    }

    #[test]
    fn closed_queue_refuses_but_drains_what_it_holds() {
        let q = Queue::new(4);
        q.push(event()).expect("room");
        q.close();
        assert_eq!(q.push(event()), Err(EnqueueError::Closed));
        assert!(matches!(q.recv_deadline(soon()), Recv::Event(_)));
        assert!(matches!(q.recv_deadline(soon()), Recv::Drained));
    }

    #[test]
    fn events_come_out_one_by_one_in_order_across_pushes() {
        let q = Queue::new(10);
        let batch: Vec<Event> = (0..3).map(|_| event()).collect();
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        let single = event();
        let single_id = single.id;
        q.push_all(batch).expect("room");
        q.push(single).expect("room");
        assert_eq!(q.depth(), 4);
        let Recv::Event(first) = q.recv_deadline(soon()) else {
            panic!("an event is waiting")
        };
        assert_eq!(first.id, ids[0]);
        assert_eq!(q.depth(), 3, "depth counts events, not channel items");
        assert_eq!(q.try_recv().map(|e| e.id), Some(ids[1]));
        assert_eq!(q.try_recv().map(|e| e.id), Some(ids[2]));
        q.close();
        assert!(matches!(q.recv_deadline(soon()), Recv::Event(e) if e.id == single_id));
        assert!(matches!(q.recv_deadline(soon()), Recv::Drained));
        assert_eq!(q.try_recv().map(|e| e.id), None);
    }

    #[test]
    fn full_capacity_of_single_pushes_fits() {
        let q = Queue::new(3);
        for _ in 0..3 {
            q.push(event()).expect("room");
        }
        for _ in 0..3 {
            assert!(q.try_recv().is_some());
        }
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn close_wakes_a_receiver_waiting_on_a_far_deadline() {
        let q = std::sync::Arc::new(Queue::new(1));
        let closer = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            closer.close();
        });
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(matches!(q.recv_deadline(far), Recv::Drained));
        t.join().expect("closer thread");
    }

    #[test]
    fn open_empty_queue_times_out() {
        let q = Queue::new(1);
        assert!(matches!(q.recv_deadline(soon()), Recv::Timeout));
        assert_eq!(q.depth(), 0);
    }
}
