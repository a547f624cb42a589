//! The permissions `regie run` needs, and nothing more: one ClusterRole for the objects regie
//! manages in every tenant namespace, and one Role for leader election in its own namespace.
//!
//! `regie rbac` prints them; the chart's templates are generated from the same rules and a test
//! checks that the running controller needs no more.

use serde_json::{Value, json};

/// Name of the ClusterRole and its binding.
pub const CLUSTER_ROLE: &str = "regie-operator";

/// Rules of the ClusterRole, as Kubernetes PolicyRules.
pub fn cluster_rules() -> Value {
    let rw = json!([
        "get", "list", "watch", "create", "update", "patch", "delete"
    ]);
    json!([
        {"apiGroups": ["regie.dev"],
         "resources": ["servicelevels", "tenants", "workplacepackages", "hostingcomponents",
                       "pricelists", "costpools", "serviceorders"],
         "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": ["regie.dev"],
         "resources": ["servicelevels/status", "tenants/status", "workplacepackages/status",
                       "hostingcomponents/status", "pricelists/status", "costpools/status",
                       "serviceorders/status", "usages/status", "invoices/status", "slareports/status"],
         "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["regie.dev"], "resources": ["tenants/finalizers"], "verbs": ["update"]},
        {"apiGroups": ["regie.dev"], "resources": ["usages", "invoices", "slareports"], "verbs": rw},
        {"apiGroups": [""], "resources": ["namespaces", "resourcequotas", "limitranges", "services"], "verbs": rw},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": rw},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": rw},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": rw},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": rw},
        // Binding a tenant's groups to `edit` must not require regie to hold `edit`'s rights itself.
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["edit"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
    ])
}

/// The one Secret regie may read: the billing system's token, in regie's own namespace.
pub const BILLING_TOKEN_SECRET: &str = "regie-billing";

/// Rules of the Role in regie's own namespace: the leader lease and the billing token.
pub fn namespace_rules() -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        // Only the billing token (`regie run --billing-token-secret <namespace>/regie-billing`).
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [BILLING_TOKEN_SECRET]},
        // The invoice numbers' counter (`regie-invoice-numbers`); no ConfigMap elsewhere.
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update", "patch"]}
    ])
}

/// ClusterRole, Role and their bindings for a ServiceAccount, as a list of manifests.
pub fn manifests(namespace: &str, service_account: &str, tenant_role: &str) -> Vec<Value> {
    let mut cluster_rules = cluster_rules();
    if tenant_role != "edit" {
        for rule in cluster_rules.as_array_mut().into_iter().flatten() {
            if rule["verbs"] == json!(["bind"]) {
                rule["resourceNames"] = json!([tenant_role]);
            }
        }
    }
    let labels =
        json!({"app.kubernetes.io/name": "regie", "app.kubernetes.io/component": "operator"});
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": CLUSTER_ROLE, "labels": labels}, "rules": cluster_rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": CLUSTER_ROLE, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
               "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": CLUSTER_ROLE, "namespace": namespace, "labels": labels}, "rules": namespace_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": CLUSTER_ROLE, "namespace": namespace, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CLUSTER_ROLE},
               "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]}),
    ]
}
