//! The CustomResourceDefinitions, generated from the types, with the CEL rules added.
//!
//! `regie crds` prints [`crds_yaml`]; the committed `crds/yaml/crds.yaml` must equal it (a test
//! checks). CEL rules (`x-kubernetes-validations`) mirror the Rust rules in [`crate::validate`]:
//! servers from 1.25 enforce them, older servers drop them and rely on the controller.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::{
    CostPool, HostingComponent, Invoice, PriceList, ServiceLevel, ServiceOrder, SlaReport, Tenant,
    Usage, WorkplacePackage,
};

/// A CEL rule at a place in a kind's schema.
pub struct CelRule {
    pub kind: &'static str,
    /// Property names from the root of the object schema, `items` for array elements.
    pub path: &'static [&'static str],
    pub rule: &'static str,
    pub message: &'static str,
}

/// Every cross-field rule, as CEL. Each has a twin in [`crate::validate`].
pub const CEL_RULES: &[CelRule] = &[
    CelRule {
        kind: "HostingComponent",
        path: &["spec"],
        rule: "has(self.hosted) != has(self.saas)",
        message: "exactly one of hosted and saas must be set",
    },
    CelRule {
        kind: "Tenant",
        path: &["spec", "membership"],
        rule: "!has(self.leaves) || self.leaves >= self.joined",
        message: "leaves must not be before joined",
    },
    CelRule {
        kind: "Tenant",
        path: &["spec", "namespace"],
        rule: "self != 'default' && !self.startsWith('kube-')",
        message: "default and kube-* are namespaces of the cluster itself, never a tenant's",
    },
    CelRule {
        kind: "Tenant",
        path: &["spec", "access", "groups", "items"],
        rule: "!self.startsWith('system:')",
        message: "system:* groups are Kubernetes's own, not the participant's staff",
    },
    CelRule {
        kind: "ServiceLevel",
        path: &["spec", "workload"],
        rule: "self.minAvailable == 0 || self.minAvailable < self.minReplicas",
        message: "minAvailable must be below minReplicas",
    },
    CelRule {
        kind: "PriceList",
        path: &["spec"],
        rule: "!has(self.effectiveUntil) || self.effectiveUntil > self.effectiveFrom",
        message: "effectiveUntil must be after effectiveFrom",
    },
    CelRule {
        kind: "PriceList",
        path: &["spec", "rates", "items"],
        rule: "(self.item == 'flexibleHour') == (self.per == 'hour')",
        message: "flexibleHour rates are per hour; account and component rates per month or year",
    },
    CelRule {
        kind: "PriceList",
        path: &["spec", "rates", "items"],
        rule: "!has(self.class) || self.item == 'component'",
        message: "only component rates have a class",
    },
    CelRule {
        kind: "PriceList",
        path: &["spec", "rates", "items"],
        rule: "!has(self.profile) || self.item == 'account'",
        message: "only account rates have a profile",
    },
    CelRule {
        kind: "CostPool",
        path: &["spec"],
        rule: "self.until >= self.from",
        message: "until must not be before from",
    },
    CelRule {
        kind: "CostPool",
        path: &["spec"],
        rule: "(self.allocation == 'fixedShares') == (has(self.shares) && size(self.shares) > 0)",
        message: "shares are required with fixedShares and only used with it",
    },
    CelRule {
        kind: "Usage",
        path: &["spec"],
        rule: "self == oldSelf",
        message: "a Usage's tenant and period never change",
    },
    CelRule {
        kind: "Invoice",
        path: &["spec"],
        rule: "oldSelf.state != 'final' || self == oldSelf",
        message: "a final invoice is immutable; corrections go on the next invoice",
    },
];

/// Every regie CRD, in a stable order, without CEL rules.
pub fn crds() -> Vec<CustomResourceDefinition> {
    generated().into_iter().map(tidy).collect()
}

/// An optional enum comes out of schemars with `null` among its values. `nullable: true`
/// already allows null, and a `null` enum value does not survive the API server's internal
/// conversion (v1.20 then refuses the CRD), so it is taken out.
fn tidy(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip_null_enums(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.retain(|x| !x.is_null());
                }
                map.values_mut().for_each(strip_null_enums);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_null_enums),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&crd).expect("a CRD always serializes");
    strip_null_enums(&mut v);
    serde_json::from_value(v).expect("a tidied CRD still deserializes")
}

fn generated() -> Vec<CustomResourceDefinition> {
    vec![
        ServiceLevel::crd(),
        Tenant::crd(),
        WorkplacePackage::crd(),
        HostingComponent::crd(),
        PriceList::crd(),
        CostPool::crd(),
        ServiceOrder::crd(),
        Usage::crd(),
        Invoice::crd(),
        SlaReport::crd(),
    ]
}

/// Every regie CRD as JSON, with the CEL rules in place.
pub fn crds_with_rules() -> Vec<Value> {
    crds()
        .into_iter()
        .map(|crd| {
            let kind = crd.spec.names.kind.clone();
            let mut v = serde_json::to_value(&crd).expect("a CRD always serializes");
            for rule in CEL_RULES.iter().filter(|r| r.kind == kind) {
                add_rule(&mut v, rule);
            }
            v
        })
        .collect()
}

fn add_rule(crd: &mut Value, rule: &CelRule) {
    for version in crd["spec"]["versions"].as_array_mut().into_iter().flatten() {
        let mut node = &mut version["schema"]["openAPIV3Schema"];
        for step in rule.path {
            node = if *step == "items" {
                &mut node["items"]
            } else {
                &mut node["properties"][*step]
            };
        }
        let Some(obj) = node.as_object_mut() else {
            continue;
        };
        let list = obj
            .entry("x-kubernetes-validations")
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .expect("validations are a list")
            .push(json!({"rule": rule.rule, "message": rule.message}));
    }
}

/// The CRDs for a server of Kubernetes minor version `minor`: servers before 1.25 know no
/// `x-kubernetes-validations` and refuse it in a server-side apply, so it is left out for them
/// (the controller runs the same rules in Rust either way).
pub fn crds_for_server(minor: u32) -> Vec<Value> {
    if minor >= 25 {
        return crds_with_rules();
    }
    crds()
        .into_iter()
        .map(|crd| serde_json::to_value(&crd).expect("a CRD always serializes"))
        .collect()
}

/// The multi-document YAML `regie crds` prints.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in crds_with_rules() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD always serializes"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_lands_on_an_existing_schema_node() {
        let all = crds_with_rules();
        for rule in CEL_RULES {
            let crd = all
                .iter()
                .find(|c| c["spec"]["names"]["kind"] == rule.kind)
                .expect("rule names a known kind");
            let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            for step in rule.path {
                node = if *step == "items" {
                    &node["items"]
                } else {
                    &node["properties"][*step]
                };
            }
            assert!(
                node.get("type").is_some(),
                "{}: {:?} is not in the schema",
                rule.kind,
                rule.path
            );
            let rules = node["x-kubernetes-validations"]
                .as_array()
                .expect("rules added");
            assert!(rules.iter().any(|r| r["rule"] == rule.rule));
        }
    }

    #[test]
    fn no_null_in_enums() {
        assert!(
            !crds_yaml().contains("- null"),
            "v1.20 refuses CRDs with null enum values"
        );
    }

    #[test]
    fn ten_kinds_in_group_regie_dev() {
        let all = crds();
        assert_eq!(all.len(), 10);
        for c in &all {
            assert_eq!(c.spec.group, "regie.dev");
            assert_eq!(c.spec.versions[0].name, "v1alpha1");
            assert!(
                c.spec.versions[0]
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
        }
        let scope = |k: &str| {
            all.iter()
                .find(|c| c.spec.names.kind == k)
                .map(|c| c.spec.scope.clone())
        };
        assert_eq!(scope("Tenant").as_deref(), Some("Cluster"));
        assert_eq!(scope("HostingComponent").as_deref(), Some("Namespaced"));
    }
}
