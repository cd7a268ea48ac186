//! Rooms across the workers of one process (`--threads`): a message from a client on one
//! worker reaches the clients of its room on every other worker, once each, in the order
//! its sender sent it.
//!
//! Each worker keeps its own local rooms ([`crate::bus::Rooms`]) and delivers to its own
//! clients directly. The hub only knows, per room, how many members each worker has, and
//! gives each worker an inbox: a message goes into the inbox of every *other* worker with
//! members in its room — one copy each, payload shared (`Bytes`), never per client. A
//! worker drains its inbox into its local room as the sender of a message from elsewhere,
//! with the same per-client bounded queues as any message (a slow client is still closed
//! with 1008, and slows nobody). Inboxes are FIFO, so one sender's messages keep their
//! order; an inbox over its byte bound (a worker that cannot keep up) drops and counts.
//!
//! With `--redis`, the process keeps one link to Redis, on worker 0 (see [`Hub::new`]): the
//! other workers' messages reach it through its inbox (to be published), what comes from
//! Redis is handed to the others through theirs, and a worker whose client enters a room
//! asks worker 0 to subscribe and waits for the confirmation, as a single worker does.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use event_listener::Event;

use crate::bus::BusMessage;

/// What crosses from one worker to another.
#[derive(Debug)]
pub enum Item {
    /// A message for the worker's local room of `channel`; `to_redis`: also publish it
    /// (the worker holds the Redis link and the message came from a client).
    Message { channel: Arc<str>, msg: BusMessage, to_redis: bool },
    /// Subscribe the Redis link to `channel`, then answer on `done`.
    Subscribe { channel: Arc<str>, done: smol::channel::Sender<()> },
    /// A client elsewhere left `channel` (the Redis link unsubscribes after the last).
    Unsubscribe(Arc<str>),
}

impl Item {
    fn size(&self) -> usize {
        match self {
            Item::Message { msg, .. } => msg.payload.len(),
            _ => 0,
        }
    }
}

struct Inbox {
    items: Mutex<VecDeque<Item>>,
    bytes: AtomicUsize,
    dropped: AtomicU64,
    ready: Event,
}

/// The rooms shared by a process's workers.
pub struct Hub {
    inboxes: Vec<Inbox>,
    /// Per channel, how many members each worker has in it.
    members: Mutex<HashMap<Arc<str>, Vec<usize>>>,
    limit: usize,
    redis: Option<usize>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("workers", &self.inboxes.len()).field("redis", &self.redis).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub for `workers` workers, each inbox bounded to `limit` bytes of payload; `redis`:
    /// the worker that holds the process's Redis link, if any.
    pub fn new(workers: usize, limit: usize, redis: Option<usize>) -> Arc<Hub> {
        let inboxes = (0..workers)
            .map(|_| Inbox {
                items: Mutex::new(VecDeque::new()),
                bytes: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                ready: Event::new(),
            })
            .collect();
        Arc::new(Hub { inboxes, members: Mutex::new(HashMap::new()), limit: limit.max(1), redis })
    }

    /// The hub of a server whose `workers` share rooms, and Redis as `redis` asks: one link
    /// for the process, worker 0's. Redis down at start is an error here, before the server
    /// listens, as with one worker (a link made to check, then closed).
    pub fn for_server(workers: usize, redis: &crate::bus::RedisArgs) -> Result<Arc<Hub>, crate::CommonError> {
        if redis.url.is_some() {
            crate::runtime::block_on(|_| crate::bus::Bus::connect(redis))?;
        }
        Ok(Hub::new(workers, redis.queue_bytes, redis.url.as_ref().map(|_| 0)))
    }

    /// Worker `me`'s side of the hub.
    pub fn link(self: &Arc<Hub>, me: usize) -> HubLink {
        HubLink { hub: self.clone(), me }
    }

    fn push(&self, to: usize, item: Item) {
        let Some(inbox) = self.inboxes.get(to) else { return };
        let size = item.size();
        // An empty inbox takes anything, so one message larger than the bound still passes.
        if size > 0
            && inbox.bytes.load(Ordering::Relaxed) > 0
            && inbox.bytes.load(Ordering::Relaxed) + size > self.limit
        {
            let n = inbox.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                crate::warning!(
                    "worker {to} is {} bytes behind the other workers' messages; dropped {n} so far",
                    inbox.bytes.load(Ordering::Relaxed)
                );
            }
            return;
        }
        inbox.bytes.fetch_add(size, Ordering::Relaxed);
        lock(&inbox.items).push_back(item);
        inbox.ready.notify(1);
    }
}

/// One worker's handle on the [`Hub`].
#[derive(Debug, Clone)]
pub struct HubLink {
    hub: Arc<Hub>,
    me: usize,
}

impl HubLink {
    /// Whether this worker holds the process's Redis link.
    pub fn holds_redis(&self) -> bool {
        self.hub.redis == Some(self.me)
    }

    /// A client of this worker entered `channel`; with Redis on another worker, returns once
    /// that worker is subscribed (or 5 s passed).
    pub async fn join(&self, channel: &str) {
        let channel: Arc<str> = {
            let mut members = lock(&self.hub.members);
            let key: Arc<str> = members.get_key_value(channel).map_or_else(|| channel.into(), |(k, _)| k.clone());
            members.entry(key.clone()).or_insert_with(|| vec![0; self.hub.inboxes.len()])[self.me] += 1;
            key
        };
        if let Some(r) = self.hub.redis
            && r != self.me
        {
            let (done, confirmed) = smol::channel::bounded(1);
            self.hub.push(r, Item::Subscribe { channel, done });
            let _ = futures_lite::FutureExt::or(async { confirmed.recv().await.ok() }, async {
                crate::runtime::Timer::after(std::time::Duration::from_secs(5)).await;
                None
            })
            .await;
        }
    }

    /// A client of this worker left `channel`.
    pub fn leave(&self, channel: &str) {
        let key = {
            let mut members = lock(&self.hub.members);
            let Some(key) = members.get_key_value(channel).map(|(k, _)| k.clone()) else { return };
            let counts = members.get_mut(channel).expect("just seen");
            counts[self.me] = counts[self.me].saturating_sub(1);
            if counts.iter().all(|&n| n == 0) {
                members.remove(channel);
            }
            key
        };
        if let Some(r) = self.hub.redis
            && r != self.me
        {
            self.hub.push(r, Item::Unsubscribe(key));
        }
    }

    /// Hands a message of `channel` to every other worker with members in it, and to the
    /// Redis link's worker unless it came `from_redis`.
    pub fn publish(&self, channel: &str, msg: &BusMessage, from_redis: bool) {
        let members = lock(&self.hub.members);
        let Some((key, counts)) = members.get_key_value(channel) else {
            drop(members);
            if let Some(r) = self.hub.redis.filter(|&r| r != self.me && !from_redis) {
                self.hub.push(r, Item::Message { channel: channel.into(), msg: msg.clone(), to_redis: true });
            }
            return;
        };
        for (w, &n) in counts.iter().enumerate() {
            if w == self.me {
                continue;
            }
            let to_redis = self.hub.redis == Some(w) && !from_redis;
            if n > 0 || to_redis {
                self.hub.push(w, Item::Message { channel: key.clone(), msg: msg.clone(), to_redis });
            }
        }
    }

    /// Waits for what other workers sent this one, and takes it all.
    pub async fn recv(&self) -> Vec<Item> {
        let inbox = &self.hub.inboxes[self.me];
        loop {
            let items: Vec<Item> = lock(&inbox.items).drain(..).collect();
            if !items.is_empty() {
                let bytes: usize = items.iter().map(Item::size).sum();
                inbox.bytes.fetch_sub(bytes, Ordering::Relaxed);
                return items;
            }
            let l = inbox.ready.listen();
            if !lock(&inbox.items).is_empty() {
                continue;
            }
            l.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text(s: &'static str) -> BusMessage {
        BusMessage { binary: false, payload: Bytes::from_static(s.as_bytes()) }
    }

    fn messages(items: Vec<Item>) -> Vec<String> {
        items
            .into_iter()
            .filter_map(|i| match i {
                Item::Message { channel, msg, .. } => {
                    Some(format!("{channel}:{}", String::from_utf8_lossy(&msg.payload)))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn messages_reach_each_other_worker_with_members_once_and_in_order() {
        let hub = Hub::new(3, 1 << 20, None);
        let (a, b, c) = (hub.link(0), hub.link(1), hub.link(2));
        crate::runtime::block_on(|_| async {
            a.join("room").await;
            b.join("room").await;
            b.join("room").await;
            c.join("other").await;
            for m in ["1", "2", "3"] {
                a.publish("room", &text(m), false);
            }
            assert_eq!(messages(b.recv().await), ["room:1", "room:2", "room:3"], "one copy each, in order");
            c.publish("room", &text("4"), false);
            assert_eq!(messages(a.recv().await), ["room:4"]);
            assert_eq!(messages(b.recv().await), ["room:4"]);
            b.leave("room");
            b.leave("room");
            a.publish("room", &text("5"), false);
            c.publish("other", &text("6"), false);
            assert!(lock(&hub.inboxes[1].items).is_empty(), "a worker without members gets nothing");
            assert!(lock(&hub.inboxes[0].items).is_empty(), "nor does the sender's own worker");
        });
    }

    #[test]
    fn the_redis_worker_gets_what_to_publish_and_subscribe() {
        let hub = Hub::new(2, 1 << 20, Some(0));
        let (r, w) = (hub.link(0), hub.link(1));
        crate::runtime::block_on(|ex| async move {
            let joining = ex.spawn(async move {
                w.join("room").await;
                w.publish("room", &text("hi"), false);
                w
            });
            let items = r.recv().await;
            let Some(Item::Subscribe { channel, done }) = items.into_iter().next() else { panic!("no subscribe") };
            assert_eq!(&*channel, "room");
            done.send(()).await.unwrap();
            let w = joining.await;
            let items = r.recv().await;
            assert!(matches!(&items[..], [Item::Message { to_redis: true, .. }]), "{items:?}");
            // What came from Redis is not sent back to it.
            w.publish("room", &text("from redis"), true);
            assert!(lock(&hub.inboxes[0].items).is_empty());
        });
    }

    #[test]
    fn a_full_inbox_drops_but_always_takes_one() {
        let hub = Hub::new(2, 4, None);
        let (a, b) = (hub.link(0), hub.link(1));
        crate::runtime::block_on(|_| async {
            b.join("r").await;
            a.publish("r", &text("larger than four"), false);
            a.publish("r", &text("x"), false);
            assert_eq!(messages(b.recv().await), ["r:larger than four"]);
            assert_eq!(hub.inboxes[1].dropped.load(Ordering::Relaxed), 1);
            a.publish("r", &text("y"), false);
            assert_eq!(messages(b.recv().await), ["r:y"], "taken bytes are released");
        });
    }
}
