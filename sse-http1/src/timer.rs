//! One re-armable deadline on a [`Runtime`]'s timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::runtime::Runtime;

/// A deadline that follows whatever the state machine asks for: armed on demand, dropped
/// once it fired (a fired sleep is never polled again).
///
/// A deadline that moves later keeps the sleep already armed. Keep-alive moves on every
/// write, and re-arming each time would register a new timer per delivery (an allocation and
/// two updates of the runtime's timer); instead the armed sleep fires at the old instant,
/// [`poll_at`](Self::poll_at) sees that the deadline has moved and arms it once, so a busy
/// stream re-arms about once per keep-alive interval. A deadline that moves earlier is
/// re-armed at once.
pub(crate) struct Deadline<R: Runtime> {
    armed: Option<(Instant, Pin<Box<R::Sleep>>)>,
}

impl<R: Runtime> Deadline<R> {
    pub(crate) fn new() -> Self {
        Deadline { armed: None }
    }

    /// `Ready` once `at` has passed; `Pending` (with `cx` registered) before it, or always
    /// when `at` is `None`.
    pub(crate) fn poll_at(&mut self, cx: &mut Context<'_>, at: Option<Instant>) -> Poll<()> {
        let Some(at) = at else {
            self.armed = None;
            return Poll::Pending;
        };
        loop {
            let (armed_at, sleep) = match &mut self.armed {
                Some((armed_at, sleep)) if *armed_at <= at => (*armed_at, sleep),
                armed => {
                    let (_, sleep) = armed.insert((at, Box::pin(R::sleep_until(at))));
                    (at, sleep)
                }
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.armed = None;
            if armed_at == at {
                return Poll::Ready(());
            }
            // It fired for an earlier instant than the one asked for now: arm that one.
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;

    thread_local! {
        static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
        static ARMED: Cell<usize> = const { Cell::new(0) };
    }

    /// A runtime whose clock is set by hand and which counts the sleeps it makes.
    struct Manual;

    struct ManualSleep(Instant);

    impl Future for ManualSleep {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if Manual::now() >= self.0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Runtime for Manual {
        type Sleep = ManualSleep;
        fn now() -> Instant {
            NOW.get().expect("the test sets the clock")
        }
        fn sleep_until(deadline: Instant) -> ManualSleep {
            ARMED.set(ARMED.get() + 1);
            ManualSleep(deadline)
        }
        fn spawn<F>(_: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            unreachable!("the deadline spawns nothing");
        }
    }

    #[test]
    fn a_deadline_that_moves_later_is_armed_once_per_firing() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        NOW.set(Some(t0));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut d = Deadline::<Manual>::new();

        // Keep-alive moving on with every write: one sleep, still armed for the first.
        for ms in [10, 11, 12, 13] {
            assert!(d.poll_at(&mut cx, at(ms)).is_pending());
        }
        assert_eq!(ARMED.get(), 1);

        // It fires at 10 for a deadline now at 13: armed again, and not ready.
        NOW.set(at(10));
        assert!(d.poll_at(&mut cx, at(13)).is_pending());
        assert_eq!(ARMED.get(), 2);
        NOW.set(at(13));
        assert!(d.poll_at(&mut cx, at(13)).is_ready());

        // A deadline that moves earlier is armed at once.
        assert!(d.poll_at(&mut cx, at(30)).is_pending());
        assert!(d.poll_at(&mut cx, at(20)).is_pending());
        assert_eq!(ARMED.get(), 4);
        NOW.set(at(20));
        assert!(d.poll_at(&mut cx, at(20)).is_ready());

        // No deadline: nothing is armed, and it never fires.
        assert!(d.poll_at(&mut cx, None).is_pending());
        NOW.set(at(1000));
        assert!(d.poll_at(&mut cx, None).is_pending());
        assert_eq!(ARMED.get(), 4);
    }
}
