//! Warning events about regie's objects, in the `events.k8s.io/v1` form. A warning repeated
//! within six minutes — same object, reason, action and note — becomes a series on the Event
//! already written (its count and last-observed time patched), as client-go's recorder does; a
//! warning with another note is an Event of its own, so the newest message is the one
//! `kubectl events` shows. Every write is counted by the verb it used.
//!
//! kube's recorder, used before, keyed repeats without the note: a different message about the
//! same object and reason within six minutes was folded into the first Event, which kept the
//! first message — a fixed field and a newly broken one showed the old field's name.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::metrics::Metrics;

/// How long a written Event takes repeats of its warning into its series.
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// The longest name an Event may have (a DNS subdomain).
const NAME_MAX: usize = 253;

/// What makes two warnings the same warning.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Key {
    pub regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl Key {
    pub fn new(regarding: &ObjectReference, reason: &str, action: &str, note: &str) -> Key {
        Key {
            regarding: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        }
    }
}

/// How one warning is sent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Send {
    /// A new Event of this name.
    Create { name: String },
    /// The `count`-th occurrence, patched onto the Event of this name.
    Repeat { name: String, count: i32 },
}

#[derive(Clone, Debug)]
struct Written {
    name: String,
    count: i32,
    last: Timestamp,
}

/// The Events written in the last [`SERIES_WINDOW`], by warning.
#[derive(Default, Debug)]
pub struct Series {
    written: HashMap<Key, Written>,
}

impl Series {
    /// Forgets Events last seen longer than the window ago, then says how to send `key` at
    /// `now` about an object named `object`.
    pub fn plan(&mut self, key: &Key, object: &str, now: Timestamp) -> Send {
        self.written
            .retain(|_, w| now.duration_since(w.last) < SERIES_WINDOW);
        match self.written.get(key) {
            Some(w) => Send::Repeat {
                name: w.name.clone(),
                count: w.count + 1,
            },
            None => Send::Create {
                name: event_name(object, now),
            },
        }
    }

    /// Remembers that `sent` reached the API server at `now`.
    pub fn sent(&mut self, key: Key, sent: &Send, now: Timestamp) {
        let (name, count) = match sent {
            Send::Create { name } => (name.clone(), 1),
            Send::Repeat { name, count } => (name.clone(), *count),
        };
        self.written.insert(
            key,
            Written {
                name,
                count,
                last: now,
            },
        );
    }

    /// Forgets `key`: its Event is gone (expired on the server, or deleted).
    pub fn forget(&mut self, key: &Key) {
        self.written.remove(key);
    }
}

/// The longest note the API server takes, in bytes.
const NOTE_MAX: usize = 1024;

/// `message` cut to what an Event's note may hold, at a character boundary.
pub fn cut_note(message: &str) -> &str {
    if message.len() <= NOTE_MAX {
        return message;
    }
    let mut end = NOTE_MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// `<object>.<nanoseconds in hex>`, as client-go names Events; the object's part cut so the
/// whole stays a valid DNS subdomain.
fn event_name(object: &str, now: Timestamp) -> String {
    let suffix = format!(".{:x}", now.as_nanosecond());
    let room = NAME_MAX - suffix.len();
    let mut head: String = object.chars().take(room).collect();
    while head.ends_with(['-', '.']) {
        head.pop();
    }
    if head.is_empty() {
        head.push_str("regie");
    }
    head + &suffix
}

/// Publishes Warning events for one controller instance.
pub struct Warnings {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<Series>,
}

impl Warnings {
    pub fn new(client: Client, controller: &str, instance: &str) -> Warnings {
        Warnings {
            client,
            controller: controller.into(),
            instance: instance.into(),
            series: Mutex::default(),
        }
    }

    /// Publishes (or repeats) one Warning about `regarding`, whose namespace must be set.
    pub async fn publish(
        &self,
        metrics: &Metrics,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let key = Key::new(regarding, reason, action, note);
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        let now = Timestamp::now();
        let plan = self.lock().plan(&key, object, now);
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let name = match plan {
            Send::Repeat { name, count } => {
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) }
                });
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        metrics.write("patch", "Event");
                        self.lock().sent(key, &Send::Repeat { name, count }, now);
                        return Ok(());
                    }
                    // The server dropped it (Events expire): the repeat starts a new one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.lock().forget(&key);
                        event_name(object, now)
                    }
                    Err(e) => return Err(e),
                }
            }
            Send::Create { name } => name,
        };
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some("Warning".into()),
            reason: Some(reason.into()),
            action: Some(action.into()),
            note: Some(note.into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        events.create(&PostParams::default(), &event).await?;
        metrics.write("create", "Event");
        self.lock().sent(key, &Send::Create { name }, now);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        // A panic elsewhere while holding it leaves a map that is still a valid map.
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_764_000_000 + secs).unwrap()
    }

    fn key(note: &str) -> Key {
        let regarding = ObjectReference {
            kind: Some("Tenant".into()),
            name: Some("etten-leur".into()),
            namespace: Some("default".into()),
            uid: Some("u1".into()),
            ..ObjectReference::default()
        };
        Key::new(&regarding, "ServiceLevelNotFound", "Reconcile", note)
    }

    #[test]
    fn a_repeat_within_the_window_joins_the_series() {
        let mut s = Series::default();
        let first = s.plan(&key("platinum"), "etten-leur", at(0));
        let Send::Create { name } = first.clone() else {
            panic!("first is created: {first:?}")
        };
        s.sent(key("platinum"), &first, at(0));
        let second = s.plan(&key("platinum"), "etten-leur", at(300));
        assert_eq!(
            second,
            Send::Repeat {
                name: name.clone(),
                count: 2
            }
        );
        s.sent(key("platinum"), &second, at(300));
        // The window counts from the last repeat, not the first.
        assert_eq!(
            s.plan(&key("platinum"), "etten-leur", at(600)),
            Send::Repeat { name, count: 3 }
        );
    }

    #[test]
    fn another_message_is_an_event_of_its_own() {
        let mut s = Series::default();
        let first = s.plan(&key("platinum"), "etten-leur", at(0));
        s.sent(key("platinum"), &first, at(0));
        let other = s.plan(&key("diamond"), "etten-leur", at(1));
        assert!(matches!(other, Send::Create { .. }), "{other:?}");
        assert_ne!(other, first);
    }

    #[test]
    fn after_the_window_a_repeat_is_new() {
        let mut s = Series::default();
        let first = s.plan(&key("platinum"), "etten-leur", at(0));
        s.sent(key("platinum"), &first, at(0));
        assert!(matches!(
            s.plan(&key("platinum"), "etten-leur", at(360)),
            Send::Create { .. }
        ));
        assert!(s.written.is_empty(), "expired entries are dropped");
    }

    #[test]
    fn a_forgotten_event_is_created_again() {
        let mut s = Series::default();
        let first = s.plan(&key("platinum"), "etten-leur", at(0));
        s.sent(key("platinum"), &first, at(0));
        s.forget(&key("platinum"));
        assert!(matches!(
            s.plan(&key("platinum"), "etten-leur", at(1)),
            Send::Create { .. }
        ));
    }

    #[test]
    fn notes_are_cut_at_a_character_within_the_limit() {
        assert_eq!(cut_note("short"), "short");
        let message = "é".repeat(600); // 1,200 bytes
        let cut = cut_note(&message);
        assert_eq!(cut.len(), 1024);
        assert_eq!(cut.chars().count(), 512);
        let message = format!("a{}", "é".repeat(600));
        assert_eq!(cut_note(&message).len(), 1023);
    }

    #[test]
    fn names_stay_valid_subdomains() {
        assert_eq!(
            event_name("web", at(0)),
            format!("web.{:x}", at(0).as_nanosecond())
        );
        let long = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&long, at(0));
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        let head = name.rsplit_once('.').unwrap().0;
        assert!(head.ends_with('a'), "no '-' before the dot: {head}");
        assert!(event_name("", at(0)).starts_with("regie."));
    }
}
