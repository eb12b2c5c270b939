//! [`Topic`] and [`User`]: the application's handles to the groups it addresses.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::membership::GroupRef;
use super::{Hub, Inner};
use crate::error::Error;
use crate::event::{Data, Event};
use crate::frame::Frame;
use crate::id::SessionId;
use crate::request::Principal;
use crate::topic::TopicName;

/// A topic (a room, a channel): the sessions that joined it, reached at once.
///
/// From [`Hub::topic`]. Sessions join with [`Session::join`](crate::Session::join) (or at
/// accept, when the hub's [topic rule](crate::HubBuilder::topic_rule) grants what the tab asks
/// for); a handle is only a name and the hub, cheap to make and keep.
///
/// A publish is encoded once and shared by every member. In resume mode it is logged once,
/// with a position in the hub's one order: a member that is away (detached, within its
/// grace) gets it when its tab comes back, after what it missed before and before what was
/// sent after, and a tab that joined after it, or left before, never does.
///
/// ```
/// use std::time::Instant;
/// use sse_proto::{Decision, Hub, HttpVersion, Request};
///
/// let hub = Hub::builder().build(Instant::now);
/// let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
/// req.header(b"accept", b"text/event-stream");
/// let Decision::Accept(tab) = hub.decide(&req, Instant::now()) else { unreachable!() };
/// tab.session.join("room-1")?;
///
/// let room = hub.topic("room-1")?;
/// assert_eq!(room.emit("said", "hello")?, 1);
/// assert_eq!(room.members(), [tab.session.id().clone()]);
/// assert_eq!(hub.topic("room-2")?.send("nobody hears this")?, 0);
/// # Ok::<(), sse_proto::Error>(())
/// ```
#[derive(Clone)]
pub struct Topic {
    name: TopicName,
    hub: Arc<Inner>,
}

/// Every session of one user (a [`Principal`]): all the tabs of a logged-in person, reached
/// at once, and closed at once.
///
/// From [`Hub::user`]. A session belongs to the principal of the request that attached it
/// last; one without a principal belongs to no user. In resume mode a send to a user is
/// logged once and reaches its detached sessions when their tabs come back, but not a
/// session that became theirs after it.
///
/// ```
/// use std::time::Instant;
/// use sse_proto::{Decision, Hub, HttpVersion, Request};
///
/// let hub = Hub::builder().build(Instant::now);
/// let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
/// req.header(b"accept", b"text/event-stream").principal(b"ann");
/// let Decision::Accept(tab) = hub.decide(&req, Instant::now()) else { unreachable!() };
///
/// let ann = hub.user("ann");
/// assert_eq!(ann.emit("notice", "you have mail")?, 1);
/// assert_eq!(ann.sessions(), [tab.session.id().clone()]);
/// // Logged out everywhere: every tab's reconnect is answered 204.
/// assert_eq!(ann.close()?, 1);
/// # Ok::<(), sse_proto::Error>(())
/// ```
#[derive(Clone)]
pub struct User {
    principal: Principal,
    hub: Arc<Inner>,
}

impl Hub {
    /// The topic named `name`, which must be a valid [`TopicName`] (else
    /// [`Error::InvalidTopic`]). A topic needs no creating: it has whoever joined it.
    pub fn topic(&self, name: impl AsRef<str>) -> Result<Topic, Error> {
        Ok(Topic {
            name: TopicName::new(name.as_ref())?,
            hub: self.inner.clone(),
        })
    }

    /// The user named by `principal` (the bytes the application's
    /// [`Principal`] carries).
    pub fn user(&self, principal: impl AsRef<[u8]>) -> User {
        User {
            principal: Principal::new(principal),
            hub: self.inner.clone(),
        }
    }
}

/// The verbs of a group ([`Topic`], [`User`]) on top of its `send_frame`, as a session has
/// them: one event built and encoded once, for every recipient.
macro_rules! group_verbs {
    ($whom:literal) => {
        #[doc = concat!("Sends a plain message (`onmessage` in the browser) to ", $whom, "; returns how many it was queued to (see [`send_frame`](Self::send_frame)).")]
        pub fn send(&self, data: impl Into<Data>) -> Result<usize, Error> {
            self.send_frame(&Event::new().data(data).encode())
        }

        #[doc = concat!("Sends a named event to ", $whom, ". Fails when the name is empty or holds CR, LF or NUL.")]
        pub fn emit(
            &self,
            name: impl Into<Cow<'static, str>>,
            data: impl Into<Data>,
        ) -> Result<usize, Error> {
            self.send_frame(&Event::new().event(name)?.data(data).encode())
        }

        #[doc = concat!("Sends a named event whose data is `value` as JSON to ", $whom, " (feature `json`).")]
        #[cfg(feature = "json")]
        pub fn emit_json<T: serde::Serialize + ?Sized>(
            &self,
            name: impl Into<Cow<'static, str>>,
            value: &T,
        ) -> Result<usize, Error> {
            self.send_frame(&Event::new().event(name)?.json(value)?.encode())
        }

        #[doc = concat!("Sends a built event to ", $whom, ".")]
        pub fn send_event(&self, event: &Event) -> Result<usize, Error> {
            self.send_frame(&event.encode())
        }
    };
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &TopicName {
        &self.name
    }

    group_verbs!("the members");

    /// Publishes one shared frame to the members and returns how many it was queued to:
    /// attached ones, and in resume mode detached ones too (it is logged for them). A topic
    /// without members logs nothing and returns 0.
    ///
    /// Every member gets the topic's publishes in one order, whichever thread publishes.
    ///
    /// In relay mode the publish goes to the relay, which numbers it and delivers it on every
    /// node with a member; the count is then this node's members, and it fails with
    /// [`Error::Unavailable`] when the relay's queue is full.
    pub fn send_frame(&self, frame: &Frame) -> Result<usize, Error> {
        self.hub.publish(GroupRef::Topic(&self.name), frame)
    }

    /// The ids of the member sessions, attached or (resume mode) detached, sorted. A session
    /// being closed (its stream writing its last bytes) is no longer listed.
    pub fn members(&self) -> Vec<SessionId> {
        self.hub.member_ids(GroupRef::Topic(&self.name))
    }

    /// The distinct users among the members (members without a user are not counted).
    pub fn users(&self) -> Vec<Principal> {
        self.hub.member_users(&self.name)
    }

    /// How many sessions are members.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether no session is a member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl User {
    /// The user's principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    group_verbs!("every session of the user");

    /// Sends one shared frame to every session of the user, attached or (resume mode)
    /// detached, and returns how many it was queued to. In relay mode it goes to the relay,
    /// as [`Topic::send_frame`] does.
    pub fn send_frame(&self, frame: &Frame) -> Result<usize, Error> {
        self.hub.publish(GroupRef::User(&self.principal), frame)
    }

    /// Closes every session of the user, as [`Session::close`](crate::Session::close) does
    /// (each id is marked, so each tab's reconnect is answered 204), and returns how many.
    /// In relay mode the user's sessions on the other nodes are closed through the relay
    /// too; the count is this node's.
    pub fn close(&self) -> Result<usize, Error> {
        let now = self.hub.clock.now();
        let slots = self.hub.members(GroupRef::User(&self.principal));
        for slot in &slots {
            self.hub.close(slot, now, true);
        }
        if self.hub.relay.is_some() {
            // The user's sessions on the other nodes.
            self.hub.relay(crate::relay::Relayed::CloseUser {
                user: self.principal.clone(),
            })?;
        }
        Ok(slots.len())
    }

    /// The ids of the user's sessions, attached or (resume mode) detached, sorted.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.hub.member_ids(GroupRef::User(&self.principal))
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Topic").field(&self.name).finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("User").field(&self.principal).finish()
    }
}
