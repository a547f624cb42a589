//! Fields the API does not have, found by walking an input document against its kind's
//! generated CRD schema (`regie crds`). Serde passes over a field it does not know, so a
//! misspelling is silently nothing — `tenantSelecter:` in a CostPool splits the pool over every
//! tenant, `acess:` in a Tenant gives its groups no RoleBinding — and the API server prunes it
//! just as silently. The offline commands report each one instead, by its JSON path.
//!
//! Where the schema allows more (`additionalProperties`, `x-kubernetes-preserve-unknown-fields`)
//! so does this walk; `apiVersion` and `kind` are the API machinery's, and `metadata` is checked
//! against ObjectMeta's fields (`label:` for `labels:` left a tenant out of every CostPool that
//! selects by label, its share paid by the others).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The `openAPIV3Schema` of every regie kind, by kind, built once.
fn schemas() -> &'static BTreeMap<String, Value> {
    static SCHEMAS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        regie_crds::crd::crds()
            .into_iter()
            .filter_map(|crd| {
                let kind = crd.spec.names.kind.clone();
                let schema = crd
                    .spec
                    .versions
                    .first()?
                    .schema
                    .as_ref()?
                    .open_api_v3_schema
                    .as_ref()
                    .map(|s| serde_json::to_value(s).expect("a schema always serializes"))?;
                Some((kind, schema))
            })
            .collect()
    })
}

/// The path of every field of `document` (one object of `kind`) that its schema does not
/// have, e.g. `spec.tenantSelecter` or `spec.rates[1].amout`; empty for a kind without one.
pub fn unknown_fields(kind: &str, document: &Value) -> Vec<String> {
    let Some(schema) = schemas().get(kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let Value::Object(fields) = document else {
        return out;
    };
    for (key, value) in fields {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Value::Object(meta) = value {
                    out.extend(
                        meta.keys()
                            .filter(|k| !OBJECT_META.contains(&k.as_str()))
                            .map(|k| format!("metadata.{k}")),
                    );
                }
            }
            _ => match schema["properties"].get(key) {
                Some(node) => walk(node, value, key, &mut out),
                None => out.push(key.clone()),
            },
        }
    }
    out
}

/// The fields of ObjectMeta (`meta/v1`), which every kind's `metadata` has (`clusterName` in
/// objects exported from servers before 1.24).
const OBJECT_META: &[&str] = &[
    "annotations",
    "clusterName",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            // An object schema that names neither its properties nor what more it takes says
            // nothing about its fields: nothing to report.
            if properties.is_none() && additional.is_none() {
                return;
            }
            for (key, v) in fields {
                let here = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(node), _) => walk(node, v, &here, out),
                    (None, Some(Value::Bool(true))) => {}
                    (None, Some(node @ Value::Object(_))) => walk(node, v, &here, out),
                    (None, _) => out.push(here),
                }
            }
        }
        Value::Array(items) => {
            if let Some(node) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(node, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(kind: &str, yaml: &str) -> Vec<String> {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        unknown_fields(kind, &v)
    }

    #[test]
    fn misspelt_fields_are_found_by_path() {
        assert_eq!(
            unknown(
                "CostPool",
                "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: p, labels: {a: b}, annotations: {x: y}}\nspec: {amount: \"1.00\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: equalShares, tenantSelecter: {matchLabels: {a: b}}}\n"
            ),
            ["spec.tenantSelecter"]
        );
        assert_eq!(
            unknown(
                "Tenant",
                "spec: {displayName: X, serviceLevel: gold, membership: {joined: \"2026-01-01\", left: \"2027-01-01\"}, acess: {groups: [g]}}\nstatuss: {}\n"
            ),
            ["spec.acess", "spec.membership.left", "statuss"]
        );
        assert_eq!(
            unknown(
                "PriceList",
                "spec: {currency: EUR, effectiveFrom: \"2026-01-01\", rates: [{item: account, per: month, amount: \"1\"}, {item: account, per: month, amout: \"1\"}]}\n"
            ),
            ["spec.rates[1].amout"]
        );
        assert_eq!(
            unknown(
                "Tenant",
                "metadata: {name: tholen, label: {municipality: \"true\"}, annotations: {a: b}, finalizers: [x], resourceVersion: \"1\"}\n"
            ),
            ["metadata.label"]
        );
    }

    #[test]
    fn maps_and_status_are_what_the_schema_allows() {
        // env, requests and limits are maps: any key, each value checked as the schema says.
        assert!(
            unknown(
                "HostingComponent",
                "spec: {class: applicationHosting, hosted: {image: x, port: 80, healthPath: /, env: {ANY_NAME: v}, resources: {requests: {cpu: 1, ephemeral-storage: 1Gi}}}}\n"
            )
            .is_empty()
        );
        // An exported object's status is part of the schema too.
        assert_eq!(
            unknown(
                "Tenant",
                "spec: {displayName: X, serviceLevel: gold, membership: {joined: \"2026-01-01\"}}\nstatus: {namespace: tenant-x, conditions: [], bogus: 1}\n"
            ),
            ["status.bogus"]
        );
        assert!(unknown("Widget", "spec: {anything: 1}\n").is_empty());
    }
}
