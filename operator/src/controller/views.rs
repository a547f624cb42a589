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
//! were decoded the same way.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::{ApiResource, DynamicResourceScope};
use serde::{Deserialize, Deserializer};

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
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        annotations: m.annotations,
        resource_version: m.resource_version,
        generation: m.generation,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

/// Any child's metadata, served by the API server's metadata-only form
/// (`PartialObjectMetadata`), which is all a child of most kinds needs to be indexed.
#[derive(Clone, Debug, Deserialize)]
pub struct ChildMeta {
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
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
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A Deployment as the child index reads it: metadata and replica counts.
#[derive(Clone, Debug, Deserialize)]
pub struct DeploymentView {
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
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
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
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

    #[test]
    fn metadata_is_asked_for_in_the_metadata_only_form() {
        assert!(ChildMeta::metadata_api());
        let served = json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": served()["metadata"].clone(),
        });
        let m: ChildMeta = serde_json::from_value(served).unwrap();
        assert_eq!(m.metadata.name.as_deref(), Some("portaal"));
        assert!(m.metadata.managed_fields.is_none());
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
        assert_eq!(view.metadata, ObjectMeta::default());
    }
}
