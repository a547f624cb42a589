//! A status condition as regie holds it in memory: the JSON and schema of Kubernetes'
//! `metav1.Condition`, but its words — type, status, reason — and the messages regie writes
//! verbatim are shared text instead of four heap strings per condition, each one pointer wide.
//!
//! Every cached Tenant, component and package carries three or four conditions, and the
//! watches deserialise each of them into fresh strings: most of what a cached status costs. The
//! words are a small vocabulary (CamelCase identifiers by API convention), so they are interned
//! once per process; the interner is bounded, so hostile or unusual input only ever costs what
//! it cost before. Messages are shared only when they are one of [`MESSAGES`], regie's fixed
//! ones, or a hosted component's replica counts (`status::replicas_message`): a message may
//! name objects, and interning those would grow without end.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The messages regie writes verbatim (see `status`), shared when read back.
pub const MESSAGES: &[&str] = &[
    crate::status::NOTHING_BLOCKS,
    crate::status::NO_WORK_IN_PROGRESS,
    crate::status::TENANT_IN_SYNC,
    crate::status::WORKLOAD_IN_SYNC,
    crate::status::ACCOUNTS_RECORDED,
    crate::status::NOT_PROBED_YET,
];

/// The longest word the interner takes (Kubernetes reasons are CamelCase identifiers).
const WORD_MAX: usize = 64;
/// How many distinct words are interned at most; later ones are owned as before.
const WORDS_MAX: usize = 1024;

/// The interned texts: regie's messages and the words seen so far. Read on every condition a
/// watch delivers, written only for a word not seen before: readers share the lock.
fn interned() -> &'static RwLock<HashMap<Box<str>, Text>> {
    static INTERNED: OnceLock<RwLock<HashMap<Box<str>, Text>>> = OnceLock::new();
    INTERNED.get_or_init(RwLock::default)
}

/// Whether `s` is one of regie's messages or a word (bounded in length and alphabet).
fn internable(s: &str) -> bool {
    MESSAGES.contains(&s)
        || crate::status::is_replicas_message(s)
        || (s.len() <= WORD_MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/' || b == b'-'))
}

/// The shared copy of `s`, when it is one of regie's messages or an internable word.
fn shared(s: &str) -> Option<Text> {
    if !internable(s) {
        return None;
    }
    if let Some(t) = interned()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(s)
    {
        return Some(t.clone());
    }
    let mut interned = interned().write().unwrap_or_else(PoisonError::into_inner);
    // Another thread may have added it between the two locks.
    if let Some(t) = interned.get(s) {
        return Some(t.clone());
    }
    // Bounded by WORDS_MAX × WORD_MAX bytes, and regie's messages, for the life of the
    // process.
    if interned.len() >= WORDS_MAX + MESSAGES.len() {
        return None;
    }
    let t = Text::owned(s.into());
    interned.insert(s.into(), t.clone());
    Some(t)
}

/// Text of a condition: shared when it can be, owned otherwise; compares, hashes and
/// serialises as the string it is.
///
/// One pointer wide: a condition holds four of them, and a cached object three or four
/// conditions. A shared text is a reference-counted copy of the interned one; an owned text
/// pays for that thinness with a second small allocation (an `Arc<str>` would be two words).
#[derive(Clone)]
pub struct Text(Arc<Box<str>>);

impl Text {
    fn owned(s: Box<str>) -> Text {
        Text(Arc::new(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this text is the interned copy, shared by every condition that holds it.
    pub fn is_shared(&self) -> bool {
        interned()
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(self.as_str())
            .is_some_and(|t| Arc::ptr_eq(&t.0, &self.0))
    }
}

impl Default for Text {
    fn default() -> Text {
        Text::from("")
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        shared(s).unwrap_or_else(|| Text::owned(s.into()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        shared(&s).unwrap_or_else(|| Text::owned(s.into_boxed_str()))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::from(s.as_str())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text::from(s))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text, E> {
                Ok(Text::from(s))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Gives `$ours` the JSON schema of `$theirs`: a type that holds in memory differently what it
/// reads and writes the same way.
macro_rules! schema_of {
    ($ours:ty, $theirs:ty) => {
        impl JsonSchema for $ours {
            fn schema_name() -> Cow<'static, str> {
                <$theirs as JsonSchema>::schema_name()
            }

            fn schema_id() -> Cow<'static, str> {
                <$theirs as JsonSchema>::schema_id()
            }

            fn inline_schema() -> bool {
                <$theirs as JsonSchema>::inline_schema()
            }

            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                <$theirs as JsonSchema>::json_schema(generator)
            }
        }
    };
}

// A plain string in the schema: statuses hold words such as a service level as `Text`, shared
// by every object that carries the same one.
schema_of!(Text, String);

/// One condition of an object's status; `metav1.Condition` on the wire and in the schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub last_transition_time: Time,
    #[serde(default)]
    pub message: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub reason: Text,
    #[serde(default)]
    pub status: Text,
    #[serde(rename = "type", default)]
    pub type_: Text,
}

type Upstream = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

schema_of!(Condition, Upstream);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn condition_json(reason: &str, message: &str) -> String {
        format!(
            r#"{{"lastTransitionTime":"2026-12-02T10:00:00Z","message":"{message}","observedGeneration":3,"reason":"{reason}","status":"True","type":"Ready"}}"#
        )
    }

    #[test]
    fn reads_and_writes_the_kubernetes_shape() {
        let json = condition_json("Ready", crate::status::WORKLOAD_IN_SYNC);
        let c: Condition = serde_json::from_str(&json).unwrap();
        assert_eq!(c.type_, "Ready");
        assert_eq!(c.status, "True");
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
        // The same bytes as the upstream type, both ways.
        let upstream: Upstream = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&upstream).unwrap(), json);
        let no_generation = r#"{"lastTransitionTime":"2026-12-02T10:00:00Z","message":"","reason":"","status":"","type":""}"#;
        let c: Condition = serde_json::from_str(no_generation).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), no_generation);
        assert!(serde_json::from_str::<Condition>(r#"{"type":"Ready"}"#).is_err());
    }

    #[test]
    fn words_and_regie_messages_are_shared_other_messages_owned() {
        let c: Condition = serde_json::from_str(&condition_json(
            "MinimumReplicasAvailable",
            crate::status::NOTHING_BLOCKS,
        ))
        .unwrap();
        assert!(c.type_.is_shared() && c.status.is_shared() && c.reason.is_shared());
        assert!(c.message.is_shared());
        let c: Condition = serde_json::from_str(&condition_json(
            "Ready",
            "zaaksysteem cannot be reached at zaak.example.org",
        ))
        .unwrap();
        assert!(!c.message.is_shared());
        assert_eq!(
            c.message,
            "zaaksysteem cannot be reached at zaak.example.org"
        );
        // A clone of an owned text is not thereby shared.
        assert!(!c.message.clone().is_shared());
        // A component's replica counts name no object: shared.
        let c: Condition = serde_json::from_str(&condition_json(
            "Available",
            &crate::status::replicas_message(0, 2, 1),
        ))
        .unwrap();
        assert!(c.message.is_shared());
        // Interned once: the same word read twice is the same text.
        let (a, b) = (
            Text::from("SomeReason"),
            Text::from(String::from("SomeReason")),
        );
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
    }

    #[test]
    fn what_is_not_a_word_is_never_interned() {
        for s in ["has spaces", "ünïcode", &"Long".repeat(20)] {
            assert!(!Text::from(s).is_shared(), "{s:?}");
        }
        assert!(Text::default().is_shared());
    }

    #[test]
    fn a_condition_is_eight_words() {
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Condition>(), 64);
    }

    #[test]
    fn a_status_word_is_shared_and_a_plain_string_in_the_schema() {
        let a: crate::tenancy::HostingComponentStatus =
            serde_json::from_str(r#"{"serviceLevel":"gold","mode":"hosted"}"#).unwrap();
        let b: crate::tenancy::HostingComponentStatus =
            serde_json::from_str(r#"{"serviceLevel":"gold","mode":"saas"}"#).unwrap();
        let (level_a, level_b) = (a.service_level.unwrap(), b.service_level.unwrap());
        assert!(level_a.is_shared() && Arc::ptr_eq(&level_a.0, &level_b.0));
        assert_eq!(
            serde_json::to_value(
                schemars::SchemaGenerator::default().into_root_schema_for::<Text>()
            )
            .unwrap(),
            serde_json::to_value(
                schemars::SchemaGenerator::default().into_root_schema_for::<String>()
            )
            .unwrap()
        );
    }

    #[test]
    fn the_schema_is_the_upstream_one() {
        let ours = schemars::SchemaGenerator::default().into_root_schema_for::<Condition>();
        let upstream = schemars::SchemaGenerator::default().into_root_schema_for::<Upstream>();
        assert_eq!(
            serde_json::to_value(ours).unwrap(),
            serde_json::to_value(upstream).unwrap()
        );
    }
}
