//! How a [`Cache`](super::cache::Cache) keeps a Tenant, a component or a package: the spec as
//! its JSON text (packed with its schema's words, `kept_text`), the status with its conditions
//! in a compact form (`kept_conditions`), metadata without the 360-byte `ObjectMeta` and its heap strings for uid and resourceVersion.
//! Readers get the whole object back, equal to what the watch delivered (managed fields
//! aside), built when they ask.
//!
//! A tenant's two components and its package were over a KiB of metadata, most of it fields
//! that are always empty on these kinds. Anything set beyond the fields kept here (labels,
//! annotations, a deletion timestamp, a uid that is not a canonical UUID) stays in
//! a boxed `ObjectMeta` of its own, so nothing is ever lost, only the common case made small.
//! A spec is a struct with a slot for every optional field (a component's is 232 bytes before
//! its strings) of which a few are set; its text is one allocation of about half that. Specs
//! are read a few times per reconcile, where decoding a hundred bytes costs a microsecond.

use std::num::{NonZeroI64, NonZeroU64};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use regie_crds::status::{Condition, Text};
use regie_crds::{HostingComponent, Tenant, WorkplacePackage};

use super::cache::{Cache, key_of};
use super::kept_conditions::KeptConditions;
use super::kept_status::{CompactStatus, KeptStatus};
use super::kept_text::{self, Vocabulary};

/// A custom kind whose objects are metadata, a spec and an optional status.
pub trait Split: Sized {
    /// The kind's name, for messages.
    const KIND: &'static str;
    type Spec: Clone + PartialEq + serde::Serialize + serde::de::DeserializeOwned;
    type Status: CompactStatus;
    fn split(self) -> (ObjectMeta, Self::Spec, Option<Self::Status>);
    fn join(meta: ObjectMeta, spec: Self::Spec, status: Option<Self::Status>) -> Self;
    /// The status's conditions.
    fn conditions(status: &mut Self::Status) -> &mut Vec<Condition>;
    /// The words of the spec's schema, which its kept text is packed with.
    fn spec_words() -> &'static Vocabulary;
}

macro_rules! split {
    ($kind:ty, $spec:ty, $status:ty, $words:expr) => {
        impl Split for $kind {
            const KIND: &'static str = stringify!($kind);
            type Spec = $spec;
            type Status = $status;
            fn split(self) -> (ObjectMeta, $spec, Option<$status>) {
                (self.metadata, self.spec, self.status)
            }
            fn join(metadata: ObjectMeta, spec: $spec, status: Option<$status>) -> Self {
                Self {
                    metadata,
                    spec,
                    status,
                }
            }
            fn conditions(status: &mut $status) -> &mut Vec<Condition> {
                &mut status.conditions
            }
            fn spec_words() -> &'static Vocabulary {
                $words.vocabulary()
            }
        }
    };
}

split!(
    HostingComponent,
    regie_crds::tenancy::HostingComponentSpec,
    regie_crds::tenancy::HostingComponentStatus,
    kept_text::COMPONENT_SPEC
);
split!(
    Tenant,
    regie_crds::tenancy::TenantSpec,
    regie_crds::tenancy::TenantStatus,
    kept_text::TENANT_SPEC
);
split!(
    WorkplacePackage,
    regie_crds::tenancy::WorkplacePackageSpec,
    regie_crds::tenancy::WorkplacePackageStatus,
    kept_text::PACKAGE_SPEC
);

/// One object as a cache keeps it.
pub struct Kept<K: Split> {
    meta: KeptMeta,
    spec: KeptSpec<K::Spec>,
    /// The status, without its conditions when they are kept apart in `conditions`.
    status: Option<KeptStatus<K::Status>>,
    /// The status's conditions, when every one of them fits
    /// [`KeptCondition`](super::kept_conditions::KeptCondition).
    conditions: KeptConditions,
}

/// A spec as its JSON text packed with the kind's words, when that text reads back equal to it
/// (and holds no token byte); else as it came.
enum KeptSpec<S> {
    Packed(Box<str>),
    Whole(Box<S>),
}

impl<S: Clone + PartialEq + serde::Serialize + serde::de::DeserializeOwned> KeptSpec<S> {
    fn new(spec: S, words: &Vocabulary) -> Self {
        // Packing needs no such check: unpacking is its exact inverse (see `kept_text`).
        let packed = serde_json::to_string(&spec)
            .ok()
            .filter(|text| serde_json::from_str::<S>(text).is_ok_and(|back| back == spec))
            .and_then(|text| kept_text::pack(&text, words));
        match packed {
            Some(packed) => KeptSpec::Packed(packed),
            None => KeptSpec::Whole(Box::new(spec)),
        }
    }

    /// The spec; None only if text that read back once does not now (not seen: decoding is
    /// deterministic), which is logged.
    fn get(&self, words: &Vocabulary) -> Option<S> {
        match self {
            KeptSpec::Whole(spec) => Some(S::clone(spec)),
            KeptSpec::Packed(packed) => Self::decoded(&kept_text::unpack(packed, words)),
        }
    }

    /// The fields of the spec that `P` declares, decoded without the others.
    fn part<P: serde::de::DeserializeOwned>(&self, words: &Vocabulary) -> Option<P> {
        match self {
            KeptSpec::Whole(spec) => serde_json::to_value(spec.as_ref())
                .ok()
                .and_then(|v| Self::decoded_from(serde_json::from_value(v))),
            KeptSpec::Packed(packed) => Self::decoded(&kept_text::unpack(packed, words)),
        }
    }

    fn decoded<P: serde::de::DeserializeOwned>(text: &str) -> Option<P> {
        Self::decoded_from(serde_json::from_str(text))
    }

    fn decoded_from<P>(read: serde_json::Result<P>) -> Option<P> {
        read.inspect_err(|e| tracing::error!(error = %e, "a cached spec does not read back"))
            .ok()
    }
}

impl<K: Split> Kept<K> {
    pub fn new(object: K) -> Self {
        let (meta, spec, status) = object.split();
        let path = key_of(&meta);
        Self::of_parts(meta, spec, status, path)
    }

    /// The object kept under `path`, its cache key (`namespace/name`, see [`key_of`]), whose
    /// copy it shares instead of keeping its name and namespace apart.
    pub fn keyed(object: K, path: &Arc<str>) -> Self {
        let (meta, spec, status) = object.split();
        Self::of_parts(meta, spec, status, path.clone())
    }

    fn of_parts(
        meta: ObjectMeta,
        spec: K::Spec,
        mut status: Option<K::Status>,
        path: Arc<str>,
    ) -> Self {
        let mut conditions = KeptConditions::default();
        if let Some(list) = status.as_mut().map(K::conditions) {
            match KeptConditions::of(list) {
                Some(kept) => {
                    conditions = kept;
                    *list = Vec::new();
                }
                // Deserialising grows a vector to four slots for its first element; a package
                // has three conditions.
                None => list.shrink_to_fit(),
            }
        }
        Kept {
            meta: KeptMeta::new(meta, path),
            spec: KeptSpec::new(spec, K::spec_words()),
            status: status.map(KeptStatus::new),
            conditions,
        }
    }

    /// The object, whole (see [`Kept::spec`] for when it is None).
    pub fn object(&self) -> Option<K> {
        Some(K::join(
            self.meta.object_meta(),
            self.spec()?,
            self.status(),
        ))
    }

    /// The reason of its `Stalled` condition, when that is True.
    pub fn stalled_reason(&self) -> Option<String> {
        let conditions = if self.conditions.is_empty() {
            let mut status = self.status.as_ref()?.get();
            std::mem::take(K::conditions(&mut status))
        } else {
            self.conditions.conditions()
        };
        regie_crds::status::find(&conditions, regie_crds::status::STALLED)
            .filter(|c| c.status == "True")
            .map(|c| c.reason.to_string())
    }

    /// The status, whole.
    pub fn status(&self) -> Option<K::Status> {
        let mut status = self.status.as_ref()?.get();
        if !self.conditions.is_empty() {
            *K::conditions(&mut status) = self.conditions.conditions();
        }
        Some(status)
    }

    /// The spec, decoded from its text.
    pub fn spec(&self) -> Option<K::Spec> {
        self.spec.get(K::spec_words())
    }

    /// Only the fields of the spec that `P` declares (a loop that looks at one field of every
    /// object each tick need not build the rest).
    pub fn spec_part<P: serde::de::DeserializeOwned>(&self) -> Option<P> {
        self.spec.part(K::spec_words())
    }

    /// Kind, namespace and name, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}/{}",
            K::KIND,
            self.namespace().unwrap_or_default(),
            self.name()
        )
    }

    pub fn name(&self) -> &str {
        self.meta.name()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.meta.namespace()
    }

    /// Whether the object is being deleted.
    pub fn deleting(&self) -> bool {
        self.meta
            .rest
            .as_ref()
            .is_some_and(|m| m.deletion_timestamp.is_some())
    }
}

/// Reads that give whole objects back.
impl<K: Split> Cache<Kept<K>> {
    /// The objects of namespace `ns`, by name; Err says why they cannot be known: the kind's
    /// first list is not complete, or one object's spec does not read back (see
    /// [`Kept::spec`]). A reader that acts on absence — the reconcile prunes the children of
    /// components it does not see — must not take an unknown object for a missing one.
    pub fn objects_in(&self, ns: &str) -> Result<Vec<Arc<K>>, String> {
        if !self.is_listed() {
            return Err(format!("the {} cache has not been listed yet", K::KIND));
        }
        self.in_namespace(ns)
            .iter()
            .map(|k| {
                k.object()
                    .map(Arc::new)
                    .ok_or_else(|| format!("the cached {} does not read back", k.describe()))
            })
            .collect()
    }

    /// The object `name` of namespace `ns`.
    pub fn object(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.get(ns, name).and_then(|k| k.object().map(Arc::new))
    }
}

/// The metadata fields every cached object has, in fixed-size form, and the rest as it came.
struct KeptMeta {
    /// `namespace/name`, or the name alone: the cache's key, shared with it. Neither a
    /// namespace nor a name can hold a `/`.
    path: Arc<str>,
    /// The uid's 128 bits, when it is a UUID written the canonical way. Bytes, not a `u128`,
    /// whose 16-byte alignment would pad this struct.
    uid: Option<[u8; 16]>,
    /// The resourceVersion, when it is a decimal number written the canonical way (etcd's),
    /// other than 0.
    resource_version: Option<NonZeroU64>,
    /// The generation, when it is not 0 (the API server starts at 1).
    generation: Option<NonZeroI64>,
    /// The creation time in seconds since the Unix epoch, when it is a whole second (the API
    /// server writes no fractions) other than the epoch itself: 8 bytes instead of 24.
    created: Option<NonZeroI64>,
    /// Finalizers, when there are any: every Tenant has regie's own, which as shared text is
    /// one copy for all of them.
    finalizers: Box<[Text]>,
    /// Every other field that is set, and a uid or resourceVersion of another form.
    rest: Option<Box<ObjectMeta>>,
}

impl KeptMeta {
    fn new(mut meta: ObjectMeta, path: Arc<str>) -> Self {
        let uid = meta
            .uid
            .as_deref()
            .and_then(uuid_bits)
            .map(u128::to_be_bytes);
        if uid.is_some() {
            meta.uid = None;
        }
        let resource_version = meta.resource_version.as_deref().and_then(revision);
        if resource_version.is_some() {
            meta.resource_version = None;
        }
        meta.name = None;
        meta.namespace = None;
        let generation = meta.generation.and_then(NonZeroI64::new);
        if generation.is_some() {
            meta.generation = None;
        }
        let created = meta.creation_timestamp.as_ref().and_then(whole_seconds);
        if created.is_some() {
            meta.creation_timestamp = None;
        }
        let finalizers = match meta.finalizers.take() {
            Some(list) if !list.is_empty() => list.into_iter().map(Text::from).collect(),
            // An explicit empty list stays as it came.
            other => {
                meta.finalizers = other;
                Box::default()
            }
        };
        KeptMeta {
            path,
            uid,
            resource_version,
            generation,
            created,
            finalizers,
            rest: (meta != ObjectMeta::default()).then(|| Box::new(meta)),
        }
    }

    fn name(&self) -> &str {
        self.path
            .split_once('/')
            .map_or(&self.path, |(_, name)| name)
    }

    fn namespace(&self) -> Option<&str> {
        self.path.split_once('/').map(|(namespace, _)| namespace)
    }

    fn object_meta(&self) -> ObjectMeta {
        let mut meta = self.rest.as_deref().cloned().unwrap_or_default();
        // An object without a name has none after the round trip either.
        let name = self.name();
        meta.name = (!name.is_empty()).then(|| name.to_string());
        meta.namespace = self.namespace().map(str::to_owned);
        if let Some(uid) = self.uid {
            meta.uid = Some(uuid_text(u128::from_be_bytes(uid)));
        }
        if let Some(v) = self.resource_version {
            meta.resource_version = Some(v.to_string());
        }
        if let Some(g) = self.generation {
            meta.generation = Some(g.get());
        }
        if let Some(at) = self
            .created
            .and_then(|s| jiff::Timestamp::from_second(s.get()).ok())
        {
            meta.creation_timestamp = Some(Time(at));
        }
        if !self.finalizers.is_empty() {
            meta.finalizers = Some(self.finalizers.iter().map(|f| f.to_string()).collect());
        }
        meta
    }
}

/// A time as whole seconds since the Unix epoch; None for a fraction of a second or the epoch
/// itself, which are then kept as they came.
fn whole_seconds(time: &Time) -> Option<NonZeroI64> {
    (time.0.subsec_nanosecond() == 0)
        .then(|| NonZeroI64::new(time.0.as_second()))
        .flatten()
}

/// An object's uid and resourceVersion, for the preconditions of a later write: 24 bytes when
/// both have their usual form (a canonical UUID, etcd's decimal revision), as text otherwise.
#[derive(Clone, Debug, PartialEq)]
pub enum Version {
    Packed {
        uid: [u8; 16],
        resource_version: NonZeroU64,
    },
    Text(Box<(Option<String>, Option<String>)>),
}

impl Version {
    pub fn of(uid: Option<String>, resource_version: Option<String>) -> Version {
        let packed_uid = uid.as_deref().and_then(uuid_bits);
        let packed_version = resource_version.as_deref().and_then(revision);
        match (packed_uid, packed_version) {
            (Some(uid), Some(resource_version)) => Version::Packed {
                uid: uid.to_be_bytes(),
                resource_version,
            },
            _ => Version::Text(Box::new((uid, resource_version))),
        }
    }

    pub fn uid(&self) -> Option<String> {
        match self {
            Version::Packed { uid, .. } => Some(uuid_text(u128::from_be_bytes(*uid))),
            Version::Text(text) => text.0.clone(),
        }
    }

    pub fn resource_version(&self) -> Option<String> {
        match self {
            Version::Packed {
                resource_version, ..
            } => Some(resource_version.to_string()),
            Version::Text(text) => text.1.clone(),
        }
    }
}

/// A resourceVersion as a number, when it is a decimal number written the canonical way
/// (etcd's) other than 0; None for any other text, which is then kept as text.
fn revision(text: &str) -> Option<NonZeroU64> {
    text.parse::<NonZeroU64>()
        .ok()
        .filter(|n| n.to_string() == text)
}

/// The bits of a UUID in canonical form (`8-4-4-4-12` lowercase hex digits); None for any
/// other text, which is then kept as text.
fn uuid_bits(text: &str) -> Option<u128> {
    let groups: Vec<&str> = text.split('-').collect();
    let canonical = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if !canonical {
        return None;
    }
    u128::from_str_radix(&groups.concat(), 16).ok()
}

fn uuid_text(bits: u128) -> String {
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn component(meta: serde_json::Value) -> HostingComponent {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "regie.dev/v1alpha1", "kind": "HostingComponent",
            "metadata": meta,
            "spec": {"class": "applicationHosting", "serviceLevel": "gold",
                     "hosted": {"image": "registry.example/app:1.0", "port": 8080,
                                "healthPath": "/healthz", "env": {"A": "1"}}},
            "status": {"observedGeneration": 2, "serviceLevel": "gold", "mode": "hosted",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "InSync",
                                       "message": "m", "lastTransitionTime": "2026-05-01T00:00:00Z",
                                       "observedGeneration": 2}]}
        }))
        .expect("a valid component")
    }

    /// The derived kinds have no `PartialEq`; their JSON (what the API sees) and their debug
    /// form (every field, set or not) are compared instead.
    fn assert_same<K: serde::Serialize + std::fmt::Debug>(a: &K, b: &K) {
        assert_eq!(
            serde_json::to_value(a).expect("json"),
            serde_json::to_value(b).expect("json")
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn a_typical_object_comes_back_equal_and_keeps_no_object_meta() {
        let c = component(serde_json::json!({
            "name": "zaaksysteem", "namespace": "tenant-utrecht",
            "uid": "0f8e6f3c-6d1a-4c8e-9b3e-2a7d5c4b3a21", "resourceVersion": "123456",
            "generation": 2, "creationTimestamp": "2026-04-30T10:00:00Z"
        }));
        let kept = Kept::new(c.clone());
        assert!(kept.meta.rest.is_none(), "nothing unusual to keep whole");
        assert!(kept.meta.created.is_some(), "creation time in seconds");
        assert!(
            matches!(&kept.spec, KeptSpec::Packed(p) if p.len() * 2 < serde_json::to_string(&c.spec).expect("json").len()),
            "a spec that reads back is kept as text, its schema's words packed to under half"
        );
        assert_same(&kept.object().expect("reads back"), &c);
        assert_eq!(kept.conditions.len(), 1, "conditions kept compact");
        assert!(
            matches!(kept.status, Some(KeptStatus::Compact(_))),
            "the status kept compact, its conditions apart"
        );
        assert_eq!(kept.name(), "zaaksysteem");
        assert_eq!(kept.namespace(), Some("tenant-utrecht"));
        assert!(!kept.deleting());
    }

    #[test]
    fn conditions_come_back_equal_and_odd_ones_keep_the_whole_list() {
        let with = |conditions: serde_json::Value| {
            let mut c = component(serde_json::json!({"name": "a", "namespace": "tenant-b"}));
            let status = c.status.as_mut().expect("a status");
            status.conditions = serde_json::from_value(conditions).expect("conditions");
            c
        };
        let condition = |type_: &str, status: &str, at: &str, generation: serde_json::Value| {
            serde_json::json!({"type": type_, "status": status, "reason": "Why",
                               "message": "what happened to tenant-b",
                               "lastTransitionTime": at, "observedGeneration": generation})
        };
        let usual = with(serde_json::json!([
            condition("Available", "False", "2026-05-01T00:00:00Z", 3.into()),
            condition("Ready", "True", "2106-02-07T06:28:15Z", i32::MAX.into()),
            condition(
                "Reconciling",
                "False",
                "1970-01-01T00:00:00Z",
                serde_json::Value::Null
            ),
            condition("Stalled", "Unknown", "2026-05-01T00:00:02Z", (-1).into()),
        ]));
        let kept = Kept::new(usual.clone());
        assert_eq!(kept.conditions.len(), 4);
        assert_same(&kept.object().expect("reads back"), &usual);
        for odd in [
            condition("Progressing", "True", "2026-05-01T00:00:00Z", 3.into()),
            condition("Ready", "Maybe", "2026-05-01T00:00:00Z", 3.into()),
            condition("Ready", "True", "2026-05-01T00:00:00.5Z", 3.into()),
            condition("Ready", "True", "2026-05-01T00:00:00Z", 0.into()),
            condition(
                "Ready",
                "True",
                "2026-05-01T00:00:00Z",
                (1_i64 << 31).into(),
            ),
            condition("Ready", "True", "1969-12-31T23:59:59Z", 3.into()),
            condition("Ready", "True", "2106-02-07T06:28:16Z", 3.into()),
        ] {
            let c = with(serde_json::json!([
                condition("Available", "False", "2026-05-01T00:00:00Z", 3.into()),
                odd
            ]));
            let kept = Kept::new(c.clone());
            assert!(kept.conditions.is_empty(), "{:?}", c.status);
            assert_same(&kept.object().expect("reads back"), &c);
        }
    }

    #[test]
    fn unusual_metadata_is_kept_as_it_came() {
        let c = component(serde_json::json!({
            "name": "zaaksysteem", "namespace": "tenant-utrecht",
            // Not canonical: upper case; a resourceVersion with a leading zero; generation 0.
            "uid": "0F8E6F3C-6D1A-4C8E-9B3E-2A7D5C4B3A21", "resourceVersion": "0123",
            "generation": 0, "creationTimestamp": "2026-04-30T10:00:00.5Z",
            "labels": {"team": "zaken"}, "annotations": {"note": "x"},
            "finalizers": ["example.org/hold"],
            "deletionTimestamp": "2026-05-02T00:00:00Z"
        }));
        let kept = Kept::new(c.clone());
        assert_same(&kept.object().expect("reads back"), &c);
        assert!(kept.deleting());
        let rest = kept.meta.rest.as_deref().expect("kept whole");
        assert_eq!(
            rest.uid.as_deref(),
            Some("0F8E6F3C-6D1A-4C8E-9B3E-2A7D5C4B3A21")
        );
        assert_eq!(rest.generation, Some(0));
        assert_eq!(rest.resource_version.as_deref(), Some("0123"));
        assert!(
            rest.creation_timestamp.is_some(),
            "a fraction of a second is kept as it came"
        );
        assert_eq!(
            rest.labels,
            Some(BTreeMap::from([("team".to_string(), "zaken".to_string())]))
        );
    }

    #[test]
    fn a_package_and_an_empty_object_come_back_equal() {
        let p: WorkplacePackage = serde_json::from_value(serde_json::json!({
            "apiVersion": "regie.dev/v1alpha1", "kind": "WorkplacePackage",
            "metadata": {"name": "standard", "namespace": "tenant-utrecht", "resourceVersion": "7"},
            "spec": {"profile": "standard", "accounts": 450}
        }))
        .expect("a valid package");
        assert_same(&Kept::new(p.clone()).object().expect("reads back"), &p);
        let bare = component(serde_json::json!({}));
        assert_same(
            &Kept::new(bare.clone()).object().expect("reads back"),
            &bare,
        );
    }

    /// Until its first list is complete a cache cannot say a namespace has no components: the
    /// reconcile would prune their children.
    #[test]
    fn a_namespaces_objects_are_known_only_once_the_first_list_is_complete() {
        use super::super::cache::{Cache, Filler, differ};
        use kube::runtime::watcher::Event;
        let keep = |c: HostingComponent, _: &Arc<str>| Kept::new(c);
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), differ);
        let named = |name: &str| component(serde_json::json!({"name": name, "namespace": "ns"}));
        filler.handle(Event::Apply(named("early")), keep);
        let not_yet = cache.objects_in("ns").expect_err("not listed");
        assert!(not_yet.contains("HostingComponent cache"), "{not_yet}");
        assert!(cache.objects_in("other").is_err());
        filler.handle(Event::<HostingComponent>::Init, keep);
        filler.handle(Event::InitApply(named("zaaksysteem")), keep);
        assert!(cache.objects_in("ns").is_err());
        filler.handle(Event::<HostingComponent>::InitDone, keep);
        let listed = cache.objects_in("ns").expect("listed");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].metadata.name.as_deref(), Some("zaaksysteem"));
        assert!(cache.objects_in("other").expect("listed").is_empty());
    }

    #[test]
    fn a_spec_that_does_not_read_back_makes_no_object() {
        let c = component(serde_json::json!({"name": "zaaksysteem"}));
        let mut kept = Kept::new(c);
        kept.spec = KeptSpec::Packed("{\"class\": 7}".into());
        assert!(kept.spec().is_none());
        assert!(kept.object().is_none());
    }

    #[test]
    fn a_part_of_the_spec_is_read_alone_from_text_and_from_a_whole_spec() {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct LevelOnly {
            service_level: Option<String>,
        }
        let c = component(serde_json::json!({"name": "zaaksysteem"}));
        let mut kept = Kept::new(c.clone());
        assert!(matches!(kept.spec, KeptSpec::Packed(_)));
        let level =
            |k: &Kept<HostingComponent>| k.spec_part::<LevelOnly>().map(|p| p.service_level);
        assert_eq!(level(&kept), Some(Some("gold".to_string())));
        kept.spec = KeptSpec::Whole(Box::new(c.spec));
        assert_eq!(level(&kept), Some(Some("gold".to_string())));
        assert_eq!(kept.describe(), "HostingComponent /zaaksysteem");
    }

    #[test]
    fn a_tenant_with_its_finalizer_keeps_no_object_meta_and_comes_back_equal() {
        let t: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "regie.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "utrecht", "uid": "0f8e6f3c-6d1a-4c8e-9b3e-2a7d5c4b3a21",
                         "resourceVersion": "42", "generation": 3,
                         "finalizers": ["regie.dev/cleanup"]},
            "spec": {"displayName": "Gemeente Utrecht", "serviceLevel": "silver",
                     "membership": {"joined": "2024-01-01"},
                     "access": {"groups": ["utrecht-beheer"]}},
            "status": {"observedGeneration": 3, "namespace": "tenant-utrecht",
                       "components": {"total": 2, "ready": 1, "notReady": ["portal"]},
                       "conditions": [{"type": "Ready", "status": "False", "reason": "ChildStalled",
                                       "message": "m", "lastTransitionTime": "2026-05-01T00:00:00Z"}]}
        }))
        .expect("a valid tenant");
        let kept = Kept::new(t.clone());
        assert!(kept.meta.rest.is_none(), "a finalizer is kept apart");
        assert!(
            kept.meta.finalizers[0].is_shared(),
            "one copy for every tenant"
        );
        assert_same(&kept.object().expect("reads back"), &t);
        // An explicit empty list of finalizers is no finalizer, but comes back as it was.
        let mut empty = t;
        empty.metadata.finalizers = Some(Vec::new());
        assert_same(
            &Kept::new(empty.clone()).object().expect("reads back"),
            &empty,
        );
    }

    #[test]
    fn uuids_round_trip_only_in_canonical_form() {
        let u = "00000000-0000-0000-0000-00000000000a";
        assert_eq!(uuid_bits(u), Some(10));
        assert_eq!(uuid_text(10), u);
        for not in [
            "",
            "0000000000000000000000000000000a",
            "00000000-0000-0000-0000-00000000000A",
            "00000000-0000-0000-0000-00000000000g",
            "+0000000-0000-0000-0000-00000000000a",
        ] {
            assert_eq!(uuid_bits(not), None, "{not}");
        }
    }

    #[test]
    fn a_version_is_packed_only_when_both_parts_read_back_the_same() {
        let uid = "6f1c2a3b-0000-4000-8000-00000000002a";
        let packed = Version::of(Some(uid.into()), Some("41".into()));
        assert!(matches!(packed, Version::Packed { .. }));
        assert_eq!(packed.uid().as_deref(), Some(uid));
        assert_eq!(packed.resource_version().as_deref(), Some("41"));
        for (uid, version) in [
            (Some("u-1"), Some("41")),
            (Some(uid), Some("041")),
            (Some(uid), Some("0")),
            (None, Some("41")),
            (Some(uid), None),
        ] {
            let v = Version::of(uid.map(Into::into), version.map(Into::into));
            assert!(matches!(v, Version::Text(_)), "{uid:?} {version:?}");
            assert_eq!(v.uid().as_deref(), uid);
            assert_eq!(v.resource_version().as_deref(), version);
        }
    }
}
