//! What the child watches decode: of each object only the fields the child index reads (name,
//! namespace, labels, annotations, generation, deletion, resourceVersion for the watch, and of a
//! Deployment its replica counts). Serde passes over every field a type does not name without
//! allocating, so managed fields, pod templates and status details are never built.
//!
//! Decoded whole, a Deployment of the benchmark took about 40 KiB of heap (its managed fields are
//! a tree with a string and a map per field owned by regie's apply and by the controller-manager,
//! its pod template a few hundred optional fields), and an operator restarting over 100 tenants
//! reached its peak heap while decoding the first page of their Deployments (heaptrack; see
//! docs/performance.md, "Run 21"). Every other kind is watched as metadata, whose managed fields
//! were decoded the same way. Of the managed fields, one answer is kept, worked out while they
//! are read and nothing of them built: whether another manager changed what regie applies since
//! regie's last apply ([`Slim::changed_by_others`]), which a restarted operator needs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::{ApiResource, DynamicResourceScope};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::children::FIELD_MANAGER;

/// The metadata fields the child index and the watcher read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    /// The watcher resumes from the last object's version.
    resource_version: Option<String>,
    generation: Option<i64>,
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    managed_fields: ManagedSummary,
}

/// One managed-fields entry, its field set reduced to whether it holds any of regie's; its
/// strings borrowed from the response where they can be.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManagerEntry<'a> {
    #[serde(borrow)]
    manager: Option<Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    subresource: Option<Cow<'a, str>>,
    time: Option<Time>,
    #[serde(default, rename = "fieldsV1")]
    fields: HoldsRegies,
}

/// What the managed fields say, folded entry by entry as they are read (no list is built): when
/// regie last applied the object, and when another manager last wrote part of what regie
/// applies to the object itself (not a subresource; see [`HoldsRegies`]).
#[derive(Debug, Default, PartialEq)]
pub struct ManagedSummary {
    pub regie_applied: Option<Time>,
    pub others_wrote: Option<Time>,
}

impl<'de> Deserialize<'de> for ManagedSummary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = ManagedSummary;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("managed fields")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ManagedSummary, A::Error> {
                let mut out = ManagedSummary::default();
                while let Some(e) = seq.next_element::<ManagerEntry<'de>>()? {
                    let Some(time) = e.time else { continue };
                    let slot = if e.manager.as_deref() == Some(FIELD_MANAGER) {
                        if e.operation.as_deref() != Some("Apply") {
                            continue;
                        }
                        &mut out.regie_applied
                    } else {
                        if !e.subresource.as_deref().is_none_or(str::is_empty) || !e.fields.0 {
                            continue;
                        }
                        &mut out.others_wrote
                    };
                    if slot.as_ref().is_none_or(|t| *t < time) {
                        *slot = Some(time);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Entries)
    }
}

/// Whether a `FieldsV1` set holds anything but status and labels or annotations of others':
/// read key by key, nothing built.
#[derive(Debug, Default, PartialEq)]
pub struct HoldsRegies(pub bool);

/// Label and annotation keys of regie's: another manager owning one of them changed it.
fn regies_key(key: &str) -> bool {
    [
        "regie.dev/",
        "app.kubernetes.io/",
        "pod-security.kubernetes.io/",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
}

/// What a key of a field set says of whether the set holds one of regie's fields.
#[derive(Clone, Copy)]
enum Key {
    /// Not regie's, whatever lies under it.
    Others,
    /// Regie's.
    Regies,
    /// Depends on the keys under it, judged by this.
    Under(fn(&str) -> Key),
}

/// The top of a field set: status and the set's own marker are not regie's, metadata depends,
/// anything else (the spec, a RoleBinding's subjects) is.
fn top_key(key: &str) -> Key {
    match key {
        "f:status" | "." => Key::Others,
        "f:metadata" => Key::Under(metadata_key),
        _ => Key::Regies,
    }
}

/// Metadata: owner references are regie's; labels and annotations depend on their keys.
fn metadata_key(key: &str) -> Key {
    match key {
        "f:labels" | "f:annotations" => Key::Under(label_key),
        "f:ownerReferences" => Key::Regies,
        _ => Key::Others,
    }
}

fn label_key(key: &str) -> Key {
    if key.strip_prefix("f:").is_some_and(regies_key) {
        Key::Regies
    } else {
        Key::Others
    }
}

/// Reads a map of a field set, judging its keys with the function it holds.
#[derive(Clone, Copy)]
struct FieldSet(fn(&str) -> Key);

impl<'de> serde::de::DeserializeSeed<'de> for FieldSet {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSet {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a FieldsV1 set")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut holds = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            holds |= match (self.0)(&key) {
                Key::Others => map.next_value::<IgnoredAny>().map(|_| false)?,
                Key::Regies => map.next_value::<IgnoredAny>().map(|_| true)?,
                Key::Under(judge) => map.next_value_seed(FieldSet(judge))?,
            };
        }
        Ok(holds)
    }
}

impl<'de> Deserialize<'de> for HoldsRegies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::DeserializeSeed;
        FieldSet(top_key).deserialize(d).map(HoldsRegies)
    }
}

/// Whether another manager changed part of what regie applies after regie's last apply, as the
/// managed fields record it: an entry of another manager on the object itself (not a
/// subresource), no older than regie's latest `Apply`, holding anything but status and labels
/// or annotations of others' (the Deployment controller's revision annotation, a label someone
/// added). Someone's change of a field regie applies takes that field from regie, so it shows
/// here, also to a process that has just started; a field someone only removed does not.
pub fn changed_by_others(managed: &ManagedSummary) -> bool {
    match (&managed.regie_applied, &managed.others_wrote) {
        (Some(applied), Some(wrote)) => wrote >= applied,
        _ => false,
    }
}

/// An object's metadata as the child index reads it, and the one answer it keeps of the
/// managed fields.
#[derive(Clone, Debug, Default)]
pub struct Slim {
    pub meta: ObjectMeta,
    /// See [`changed_by_others`].
    pub changed_by_others: bool,
}

impl<'de> Deserialize<'de> for Slim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = SlimMeta::deserialize(d)?;
        Ok(Slim {
            changed_by_others: changed_by_others(&m.managed_fields),
            meta: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                labels: m.labels,
                annotations: m.annotations,
                resource_version: m.resource_version,
                generation: m.generation,
                deletion_timestamp: m.deletion_timestamp,
                ..ObjectMeta::default()
            },
        })
    }
}

/// Any child's metadata, served by the API server's metadata-only form
/// (`PartialObjectMetadata`), which is all a child of most kinds needs to be indexed.
#[derive(Clone, Debug, Deserialize)]
pub struct ChildMeta {
    #[serde(default)]
    pub metadata: Slim,
}

impl kube::Resource for ChildMeta {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn metadata_api() -> bool {
        true
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata.meta
    }
}

/// A Deployment as the child index reads it: metadata and replica counts.
#[derive(Clone, Debug, Deserialize)]
pub struct DeploymentView {
    #[serde(default)]
    pub metadata: Slim,
    pub spec: Option<DeploymentSpecView>,
    pub status: Option<DeploymentStatusView>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpecView {
    pub replicas: Option<i32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatusView {
    /// Pods the Deployment has, whatever their state.
    pub replicas: Option<i32>,
    pub available_replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub observed_generation: Option<i64>,
}

impl kube::Resource for DeploymentView {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Deployment".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "apps".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "deployments".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::Resource;
    use serde_json::json;

    /// A Deployment as the API server sends it, managed fields and all.
    fn served() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "portaal",
                "namespace": "tenant-tholen",
                "uid": "0b6f7e34-5c57-4c1e-9d2a-6a3f1f0e9a11",
                "resourceVersion": "4711",
                "generation": 3,
                "creationTimestamp": "2026-12-03T09:00:00Z",
                "deletionTimestamp": "2026-12-03T10:00:00Z",
                "labels": {"regie.dev/tenant": "tholen", "regie.dev/managed-by": "regie"},
                "annotations": {"regie.dev/applied-hash": "ab"},
                "managedFields": [{
                    "manager": "regie",
                    "operation": "Apply",
                    "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}
                }]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "portaal"}},
                "template": {
                    "metadata": {"labels": {"app": "portaal"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
                }
            },
            "status": {
                "observedGeneration": 3,
                "replicas": 2,
                "updatedReplicas": 2,
                "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "False"}]
            }
        })
    }

    #[test]
    fn a_deployment_view_reads_what_the_whole_object_says_and_nothing_more() {
        let whole: Deployment = serde_json::from_value(served()).unwrap();
        let view: DeploymentView = serde_json::from_value(served()).unwrap();
        let (m, w) = (view.meta(), whole.meta());
        assert_eq!(m.name, w.name);
        assert_eq!(m.namespace, w.namespace);
        assert_eq!(m.labels, w.labels);
        assert_eq!(m.annotations, w.annotations);
        assert_eq!(m.resource_version, w.resource_version);
        assert_eq!(m.generation, w.generation);
        assert_eq!(m.deletion_timestamp, w.deletion_timestamp);
        assert!(m.managed_fields.is_none() && m.uid.is_none());
        let (spec, status) = (view.spec.unwrap(), view.status.unwrap());
        let whole_status = whole.status.unwrap();
        assert_eq!(spec.replicas, whole.spec.unwrap().replicas);
        assert_eq!(status.available_replicas, whole_status.available_replicas);
        assert_eq!(status.updated_replicas, whole_status.updated_replicas);
        assert_eq!(status.observed_generation, whole_status.observed_generation);
    }

    /// Managed fields as a restarted operator lists them: `regie`'s apply at 08:00, then
    /// others'.
    fn listed(others: serde_json::Value) -> ChildMeta {
        let mut fields = vec![json!({
            "manager": "regie", "operation": "Apply", "apiVersion": "v1",
            "time": "2026-03-02T08:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:regie.dev/tenant": {}}}, "f:spec": {"f:selector": {}}}
        })];
        fields.extend(others.as_array().cloned().unwrap_or_default());
        serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {"name": "web", "namespace": "tenant-a", "managedFields": fields}
        }))
        .unwrap()
    }

    fn by(manager: &str, time: &str, fields: serde_json::Value) -> serde_json::Value {
        json!({"manager": manager, "operation": "Update", "apiVersion": "v1", "time": time,
               "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn a_change_by_someone_else_since_regies_apply_is_read_from_the_managed_fields() {
        let changed = |others| listed(others).metadata.changed_by_others;
        // The controllers' own writes: status, and the Deployment controller's revision.
        let controller = by(
            "kube-controller-manager",
            "2026-03-02T08:00:01Z",
            json!({"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}, "f:status": {"f:replicas": {}}}),
        );
        assert!(!changed(json!([controller.clone()])));
        // A label of someone's own is none of regie's business.
        let team = by(
            "kubectl-label",
            "2026-03-02T09:00:00Z",
            json!({"f:metadata": {"f:labels": {"f:team": {}}}}),
        );
        assert!(!changed(json!([team])));
        // An edit of the spec, or of a label of regie's (the Pod Security level), since regie's
        // apply: changed.
        let edited = by(
            "kubectl-edit",
            "2026-03-02T09:00:00Z",
            json!({"f:spec": {"f:selector": {"f:regie.dev/component": {}}}}),
        );
        assert!(changed(json!([controller, edited.clone()])));
        let relabelled = by(
            "kubectl-label",
            "2026-03-02T08:00:00Z",
            json!({"f:metadata": {"f:labels": {"f:pod-security.kubernetes.io/enforce": {}}}}),
        );
        assert!(changed(json!([relabelled])), "in the same second counts");
        // An edit before regie's last apply was overwritten by it.
        let earlier = by(
            "kubectl-edit",
            "2026-03-02T07:59:59Z",
            json!({"f:spec": {"f:selector": {}}}),
        );
        assert!(!changed(json!([earlier])));
        // A status written through its subresource is the controller's.
        let mut status = edited.clone();
        status["subresource"] = json!("status");
        assert!(!changed(json!([status])));
        // An object regie never applied is held to nothing.
        let foreign: ChildMeta = serde_json::from_value(json!({
            "metadata": {"name": "x", "managedFields": [edited]}
        }))
        .unwrap();
        assert!(!foreign.metadata.changed_by_others);
        // Nothing of the managed fields is kept.
        assert!(listed(json!([])).meta().managed_fields.is_none());
    }

    #[test]
    fn metadata_is_asked_for_in_the_metadata_only_form() {
        assert!(ChildMeta::metadata_api());
        let served = json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": served()["metadata"].clone(),
        });
        let m: ChildMeta = serde_json::from_value(served).unwrap();
        assert_eq!(m.metadata.meta.name.as_deref(), Some("portaal"));
        assert!(m.metadata.meta.managed_fields.is_none());
        let ar = ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("", "v1", "ResourceQuota"),
            "resourcequotas",
        );
        assert_eq!(ChildMeta::url_path(&ar, None), "/api/v1/resourcequotas");
    }

    #[test]
    fn an_object_without_status_or_metadata_still_decodes() {
        let view: DeploymentView =
            serde_json::from_value(json!({"spec": {"replicas": 1}})).unwrap();
        assert!(view.status.is_none());
        assert_eq!(view.metadata.meta, ObjectMeta::default());
    }
}
