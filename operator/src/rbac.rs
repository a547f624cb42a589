//! The permissions `regie run` needs, and nothing more: one ClusterRole for the objects regie
//! manages in every tenant namespace, and one Role for leader election in its own namespace.
//!
//! `regie rbac` prints them; the chart's templates are generated from the same rules and a test
//! checks that the running controller needs no more.

use serde_json::{Value, json};

use crate::controller::delivery::SecretRef;
use crate::controller::invoicing::COUNTER as INVOICE_COUNTER;

/// Name of the ClusterRole and its binding.
pub const CLUSTER_ROLE: &str = "regie-operator";

/// Rules of the ClusterRole, as Kubernetes PolicyRules. Each verb is one the controller uses:
/// its inputs and children are read through watches alone (list, watch: no `get`), children
/// are server-side applied and pruned, the Tenant's finalizer is a merge patch, statuses are
/// patched, Usages are created (their ledger is status), SLA reports applied (and deleted past
/// their retention: final daily and weekly ones), and invoices
/// created, replaced and — drafts no longer wanted — deleted. `get` is for what is read fresh
/// before a write: a tenant's namespace before it is deleted, ledgers, invoices, SLA reports.
/// Nothing is ever `update`d but an Invoice. `e2e/tests/operator.rs` checks both halves against
/// the API server's audit log: every request allowed, every verb used (or used in a test named
/// there).
pub fn cluster_rules() -> Value {
    let read = json!(["list", "watch"]);
    // `get`: a child is read before it is deleted, to make sure regie applied it.
    let children = json!(["get", "list", "watch", "create", "patch", "delete"]);
    json!([
        {"apiGroups": ["regie.dev"],
         "resources": ["servicelevels", "workplacepackages", "hostingcomponents",
                       "pricelists", "costpools", "serviceorders"],
         "verbs": read},
        {"apiGroups": ["regie.dev"], "resources": ["tenants"], "verbs": ["list", "watch", "patch"]},
        {"apiGroups": ["regie.dev"],
         "resources": ["tenants/status", "workplacepackages/status", "hostingcomponents/status",
                       "usages/status", "invoices/status", "slareports/status"],
         "verbs": ["patch"]},
        {"apiGroups": ["regie.dev"], "resources": ["usages"], "verbs": ["get", "list", "watch", "create"]},
        {"apiGroups": ["regie.dev"], "resources": ["slareports"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": ["regie.dev"], "resources": ["invoices"], "verbs": ["get", "list", "watch", "create", "update", "delete"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["resourcequotas", "limitranges", "services"], "verbs": children},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": children},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": children},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": children},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": children},
        // Binding a tenant's groups to `edit` must not require regie to hold `edit`'s rights itself.
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["edit"]},
        // Warning events (controller::warnings), events.k8s.io/v1; a repeat patches its series.
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
    ])
}

/// Checks `--tenant-role` (`regie run`, `regie rbac`, `regie render`, `regie diff`; the chart's
/// `operator.tenantRole`). `cluster-admin` and `admin` would let a tenant's groups edit the
/// namespace object itself (remove its Pod Security label, its regie labels) and its
/// RoleBindings; `system:*` roles are Kubernetes's own. `edit`, or a role of the platform's own
/// making, is what a tenant gets.
pub fn tenant_role(role: &str) -> Result<String, String> {
    if role.is_empty() {
        return Err("must name a ClusterRole, e.g. edit".into());
    }
    // It names the RoleBinding too (`regie-tenant-<role>`), which must be a path segment.
    if role.contains(['/', '%']) || role == "." || role == ".." {
        return Err(format!(
            "{role:?} cannot name a ClusterRole: no '/' or '%', not '.' or '..'"
        ));
    }
    if role == "cluster-admin" || role == "admin" || role.starts_with("system:") {
        return Err(format!(
            "{role:?} would let a tenant's groups change their namespace itself (its Pod Security \
             and regie labels) or act as Kubernetes's own components; use edit or a ClusterRole \
             of your own"
        ));
    }
    Ok(role.to_string())
}

/// The one Secret regie may read: the billing system's token, in regie's own namespace.
pub const BILLING_TOKEN_SECRET: &str = "regie-billing";

/// Rules of the Role in regie's own namespace: the leader lease, the billing token and the
/// invoice numbers' counter.
pub fn namespace_rules() -> Value {
    namespace_rules_reading(BILLING_TOKEN_SECRET)
}

fn namespace_rules_reading(billing_token: &str) -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
        // Only the billing token (`regie run --billing-token-secret <namespace>/regie-billing`).
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [billing_token]},
        // The invoice numbers' counter, created once (`create` cannot be limited by name) and
        // then read and replaced by name; no other ConfigMap.
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update"], "resourceNames": [INVOICE_COUNTER]}
    ])
}

/// ClusterRole, Role and their bindings for a ServiceAccount, as a list of manifests. The
/// billing token is `billing_token` (`regie run --billing-token-secret`), by default
/// `regie-billing` in `namespace`; one in another namespace gets a Role of its own there that
/// reads that Secret alone.
pub fn manifests(
    namespace: &str,
    service_account: &str,
    tenant_role: &str,
    billing_token: Option<&SecretRef>,
) -> Vec<Value> {
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
    let (token_namespace, token_name) = billing_token
        .map_or((namespace, BILLING_TOKEN_SECRET), |s| {
            (s.namespace.as_str(), s.name.as_str())
        });
    let own_token = if token_namespace == namespace {
        token_name
    } else {
        BILLING_TOKEN_SECRET
    };
    let subjects =
        json!([{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]);
    let mut manifests = vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": CLUSTER_ROLE, "labels": labels}, "rules": cluster_rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": CLUSTER_ROLE, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
               "subjects": subjects}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": CLUSTER_ROLE, "namespace": namespace, "labels": labels}, "rules": namespace_rules_reading(own_token)}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": CLUSTER_ROLE, "namespace": namespace, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CLUSTER_ROLE},
               "subjects": subjects}),
    ];
    if token_namespace != namespace {
        let name = format!("{CLUSTER_ROLE}-billing-token");
        manifests.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": token_namespace, "labels": labels},
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [token_name]}]}));
        manifests.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name, "namespace": token_namespace, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": subjects}),
        );
    }
    manifests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_roles_that_reach_beyond_the_namespace_are_refused() {
        for bad in [
            "cluster-admin",
            "admin",
            "system:aggregate-to-edit",
            "",
            "edit/x%",
            "..",
        ] {
            assert!(tenant_role(bad).is_err(), "{bad}");
        }
        for ok in ["edit", "view", "regie-tenant"] {
            assert_eq!(tenant_role(ok).as_deref(), Ok(ok));
        }
    }

    #[test]
    fn the_cli_refuses_them_too() {
        use clap::Parser;
        for args in [
            ["regie", "rbac", "--tenant-role", "cluster-admin"].as_slice(),
            &["regie", "run", "--tenant-role", "admin"],
        ] {
            let err = crate::cli::Cli::try_parse_from(args).expect_err("refused");
            assert!(err.to_string().contains("--tenant-role"), "{err}");
        }
    }
}
