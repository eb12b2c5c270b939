//! [`BodyBudget`]: a server-wide cap on the bytes of request bodies held while they arrive,
//! so that many slow bodies cannot add up to more memory than the server can spare.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default budget: 64 MiB of request bodies in flight per server.
pub const DEFAULT_BODY_BUDGET: usize = 64 << 20;

/// A cap on the bytes of request bodies that the connections of one server hold at once
/// while those bodies arrive.
///
/// Each connection's limits bound one body (`max_body`, a deadline), but not their sum: 400
/// connections that each send most of a 1 MiB body and then one byte a second would pin
/// 400 MiB. A connection whose body is not complete in what it has read takes a
/// [`BodyGrant`] for the bytes it will hold (the declared `Content-Length`, or a chunked
/// body's decoded bytes as they arrive) and gives it back when the request is answered or
/// the connection ends. When the budget has not that much left, the request is refused at
/// once (503 with `Retry-After`) and nothing of its body is read: the sum stays under the
/// budget whatever the number of sockets.
///
/// A body that arrives whole with its head (the common small `POST`) never takes a grant,
/// so an exhausted budget does not refuse it. Cloning shares the same budget. Lock-free;
/// no clock.
///
/// ```
/// use sse_http1::proto::BodyBudget;
///
/// let budget = BodyBudget::new(1000);
/// let mut a = budget.grant();
/// let mut b = budget.grant();
/// assert!(a.reserve_total(600));
/// assert!(!b.reserve_total(600), "only 400 bytes are left");
/// assert!(b.reserve_total(400));
/// drop(a);
/// assert_eq!(budget.in_use(), 400);
/// ```
#[derive(Debug, Clone)]
pub struct BodyBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

/// Bytes of a [`BodyBudget`] held for one request body, given back when dropped (or by
/// [`release`](Self::release)).
#[derive(Debug)]
#[must_use = "the bytes are given back when the grant is dropped"]
pub struct BodyGrant {
    inner: Arc<Inner>,
    held: usize,
}

impl BodyBudget {
    /// A budget of `limit` bytes of request bodies in flight.
    pub fn new(limit: usize) -> BodyBudget {
        BodyBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The cap, in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes held by grants now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// An empty grant, to grow with [`BodyGrant::reserve_total`].
    pub fn grant(&self) -> BodyGrant {
        BodyGrant {
            inner: self.inner.clone(),
            held: 0,
        }
    }
}

impl Default for BodyBudget {
    /// [`DEFAULT_BODY_BUDGET`].
    fn default() -> Self {
        BodyBudget::new(DEFAULT_BODY_BUDGET)
    }
}

impl BodyGrant {
    /// Grows the grant to hold at least `total` bytes. Returns `false`, taking nothing more,
    /// when the budget has not that much left; a grant already that large is unchanged.
    pub fn reserve_total(&mut self, total: usize) -> bool {
        let Some(more) = total.checked_sub(self.held).filter(|&n| n > 0) else {
            return true;
        };
        let limit = self.inner.limit;
        let taken = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&n| n <= limit)
            });
        if taken.is_ok() {
            self.held = total;
        }
        taken.is_ok()
    }

    /// The budget's cap, in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes this grant holds.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Gives every byte back; the grant can grow again.
    pub fn release(&mut self) {
        let held = std::mem::take(&mut self.held);
        if held > 0 {
            self.inner.used.fetch_sub(held, Ordering::AcqRel);
        }
    }
}

impl Drop for BodyGrant {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_add_up_to_the_limit_and_give_back() {
        let budget = BodyBudget::new(100);
        assert_eq!(budget.limit(), 100);
        let mut a = budget.grant();
        assert!(a.reserve_total(30));
        assert!(a.reserve_total(60), "grows by 30 more");
        assert!(a.reserve_total(10), "already holds more");
        assert_eq!((a.held(), budget.in_use()), (60, 60));

        let mut b = budget.clone().grant();
        assert!(!b.reserve_total(41));
        assert_eq!(
            (b.held(), budget.in_use()),
            (0, 60),
            "a refusal takes nothing"
        );
        assert!(b.reserve_total(40));
        assert!(!a.reserve_total(61));
        assert_eq!(a.held(), 60);

        a.release();
        assert_eq!((a.held(), budget.in_use()), (0, 40));
        assert!(a.reserve_total(60), "a released grant grows again");
        drop(b);
        drop(a);
        assert_eq!(budget.in_use(), 0);
        assert!(!budget.grant().reserve_total(usize::MAX));
        assert_eq!(BodyBudget::default().limit(), DEFAULT_BODY_BUDGET);
    }
}
