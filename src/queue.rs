//! The one buffer between the HTTP front end and the writer.
//!
//! A bounded crossbeam channel, counted in events. Producers reserve room for
//! all their events before sending any, so a batch request is enqueued whole
//! or not at all, and a full queue is known at once instead of waited on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Events reserved by producers and not yet received by the writer,
    /// plus the [`CLOSED`] bit.
    state: AtomicUsize,
    capacity: usize,
}

impl Queue {
    /// A queue holding at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, CLOSED - 1);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Queue {
            tx,
            rx,
            state: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Enqueues every event, or none of them.
    pub fn push_all(&self, events: Vec<Event>) -> Result<(), EnqueueError> {
        let n = events.len();
        if n > self.capacity {
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
        // The reservation guarantees room, and the queue owns a receiver, so
        // these sends neither block nor fail.
        for event in events {
            let _ = self.tx.try_send(event);
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
        loop {
            let slice = deadline.min(Instant::now() + CLOSE_POLL);
            match self.rx.recv_deadline(slice) {
                Ok(event) => {
                    self.state.fetch_sub(1, Ordering::AcqRel);
                    return Recv::Event(event);
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
        let event = self.rx.try_recv().ok()?;
        self.state.fetch_sub(1, Ordering::AcqRel);
        Some(event)
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
    use chrono::Utc;
    use std::net::{IpAddr, Ipv4Addr};

    fn event() -> Event {
        Event {
            id: uuid::Uuid::now_v7(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: None,
            event: "e".into(),
            user: "u".into(),
            location: "l".into(),
            received_at: Utc::now(),
            event_time: Utc::now(),
            extra: "{}".into(),
            accepted_at: Instant::now(),
        }
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
