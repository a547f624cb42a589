//! Reconciling one tenant: dereference its level, components and packages; validate; build the
//! desired children with the same functions `regie render` uses; apply what changed; prune what
//! is no longer wanted; write the statuses of the tenant, its components and its packages.
//!
//! Bad input never loops: it sets `Stalled` with the root cause, emits one Warning event, and
//! waits for a change to the object (or to what it refers to).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use regie_crds::status::Condition;
use regie_crds::status::{self, AVAILABLE, READY, RECONCILING, STALLED};
use regie_crds::tenancy::{HostingComponentStatus, Rollup, TenantStatus, WorkplacePackageStatus};
use regie_crds::validate::{FieldError, Validate};
use regie_crds::{HostingComponent, Tenant, WorkplacePackage};
use serde::Serialize;
use serde_json::json;

use super::children::{self, ChildKey, Prepared, key_of};
use super::queue::Next;
use super::{Context, NamespaceHolder, cache};
use crate::desired::{self, Child};
use crate::inventory::{tenant_namespace, unknown_level};
use crate::tier::Tier;

/// Removing a Tenant waits for this finalizer: its namespace goes first.
pub const FINALIZER: &str = "regie.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A cached object that cannot be read back (not seen): the reconcile stops before it could
    /// take the object for a removed one and prune its children.
    #[error("{0}; nothing applied or pruned")]
    Unreadable(String),
    /// Something retrying soon will not change — a child the API server refuses (invalid, or
    /// denied by an admission policy), a namespace regie did not create: the tenant goes
    /// Stalled with this reason and message.
    #[error("{}", .0.message)]
    Rejected(Stall),
}

/// How soon a tenant whose child the API server refused is tried again (a change of the tenant
/// or its components tries at once): a policy or a webhook may change without regie seeing it.
const REJECTED_RETRY: Duration = Duration::from_secs(60);

impl Error {
    /// Whether the API server answered that tenant `name` itself does not exist.
    fn is_gone_tenant(&self, name: &str) -> bool {
        let Error::Kube(kube::Error::Api(s)) = self else {
            return false;
        };
        s.code == 404
            && s.details.as_ref().is_some_and(|d| {
                d.group == Tenant::group(&()) && d.kind == Tenant::plural(&()) && d.name == name
            })
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(kube::Error::Api(_)) => "ApiError",
            Error::Kube(_) => "ConnectionError",
            Error::Unreadable(_) => "CacheUnreadable",
            Error::Rejected(stall) => stall.reason,
        }
    }
}

/// How soon a tenant is tried again after `failures` failed reconciles in a row: 5 s, then
/// twice as long each time, at most five minutes. A tenant that keeps failing (a ledger too
/// large to write, a server that refuses it every time) must not cost a read and a write every
/// few seconds for good; one that failed once is tried again soon.
pub fn retry_after(failures: u32) -> Duration {
    const FIRST: Duration = Duration::from_secs(5);
    const MOST: Duration = Duration::from_secs(300);
    FIRST
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MOST)
}

/// After a failed reconcile: retry soon, without hammering a struggling server.
fn error_policy(tenant: &str, error: &Error, ctx: &Context) -> Next {
    ctx.metrics
        .reconciles
        .with_label_values(&["Tenant", "error"])
        .inc();
    ctx.metrics
        .reconcile_errors
        .with_label_values(&["Tenant", error.reason()])
        .inc();
    let failures = {
        let mut failures = ctx
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(tenant.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let after = retry_after(failures);
    tracing::warn!(tenant = %tenant, error = %error, failures, retry_in = ?after, "reconcile failed; retrying");
    Next::After(after)
}

/// A reconcile of `tenant` that did not fail: its next failure is tried again soon.
fn succeeded(tenant: &str, ctx: &Context) {
    let mut failures = ctx
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !failures.is_empty() {
        failures.remove(tenant);
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why something cannot proceed: the `Stalled` condition's reason and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Stall {
    pub reason: &'static str,
    pub message: String,
}

/// One component's plan: its tier and children, or why it is stalled.
struct ComponentPlan {
    component: Arc<HostingComponent>,
    level: String,
    outcome: Result<Tier, Stall>,
    /// Why its probe target is refused, when its plan is good: stalled all the same, with its
    /// workload applied at its tier (see `probing::sync_component`).
    probe_stall: Option<Stall>,
}

/// Reconciles the tenant `name` as the cache holds it now; a tenant gone from the cache needs
/// nothing (its finalizer held it until its cleanup was done).
pub async fn reconcile_named(name: String, ctx: Arc<Context>) -> Next {
    let Some(tenant) = ctx.tenant(&name) else {
        succeeded(&name, &ctx);
        return Next::AwaitChange;
    };
    match reconcile(tenant, ctx.clone()).await {
        Ok(next) => {
            succeeded(&name, &ctx);
            next
        }
        // Queued before its finalizer was released, read from a cache that had not seen it
        // go: nothing is left to do (a retry would fail the same way and log a warning).
        Err(e) if e.is_gone_tenant(&name) => {
            succeeded(&name, &ctx);
            Next::AwaitChange
        }
        Err(e) => error_policy(&name, &e, &ctx),
    }
}

async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Next, Error> {
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&["Tenant"])
        .start_timer();
    // The span follows the future, not the thread: a guard held across an await would leak into
    // whatever else that worker thread polls meanwhile.
    let span = tracing::info_span!("reconcile", tenant = %tenant.name_any());
    let _reconciling = ctx.activity.reconciling();
    tracing::Instrument::instrument(reconcile_tenant(tenant, ctx.clone()), span).await
}

async fn reconcile_tenant(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Next, Error> {
    let name = tenant.name_any();
    if tenant.meta().deletion_timestamp.is_some() {
        return cleanup(&tenant, &ctx).await;
    }
    ensure_finalizer(&tenant, &ctx).await?;

    // Validate the tenant, dereference its level and make sure its namespace is not another
    // tenant's: taking that over would break the other's isolation, and deleting either tenant
    // would take the other's workloads with it.
    let ns = tenant_namespace(&tenant);
    let errors = regie_crds::validate::tenant(&tenant, &ctx.settings.allowed_namespaces);
    let tier = if !errors.is_empty() {
        Err(Stall {
            reason: "InvalidSpec",
            message: join(&errors),
        })
    } else {
        resolve_tier(&ctx, &tenant.spec.service_level)
    }
    .and_then(|tier| match ctx.namespace_owner_besides(&ns, &name) {
        Some(NamespaceHolder::Owner(owner)) => Err(Stall {
            reason: "NamespaceConflict",
            message: format!(
                "namespace {ns} belongs to Tenant {owner}; give this tenant a spec.namespace of \
                 its own"
            ),
        }),
        Some(NamespaceHolder::LeftBy(left)) => Err(Stall {
            reason: "NamespaceConflict",
            message: format!(
                "namespace {ns} still holds HostingComponents or WorkplacePackages that Tenant \
                 {left} left there when it moved out; this tenant takes the namespace over once \
                 they are moved or deleted, or at once, with them, when the namespace is handed \
                 over by labelling it {}={name}",
                desired::LABEL_TENANT
            ),
        }),
        None => Ok(tier),
    });
    let tier = match tier {
        Ok(t) => t,
        Err(stall) => {
            write_tenant_status(&ctx, &tenant, TenantOutcome::Stalled(stall), None).await?;
            ctx.metrics
                .reconciles
                .with_label_values(&["Tenant", "stalled"])
                .inc();
            return Ok(Next::AwaitChange);
        }
    };

    // Build: the tenant's own children, then each component's.
    let tenant_owner = children::owner_ref(tenant.as_ref());
    let mut desired: Vec<Prepared> = desired::tenant_children(&tenant, &tier, &ctx.settings)
        .into_iter()
        .map(|c| children::prepare(&ctx.kinds, c, tenant_owner.clone()))
        .collect();
    // By name.
    let components = ctx.components.objects_in(&ns).map_err(Error::Unreadable)?;
    let mut plans = Vec::new();
    for c in components {
        let level = desired::component_level(&tenant, &c).to_string();
        let errors = regie_crds::validate::hosting_component(&c);
        let outcome = if !errors.is_empty() {
            Err(Stall {
                reason: "InvalidSpec",
                message: join(&errors),
            })
        } else {
            resolve_tier(&ctx, &level)
        };
        if let Ok(t) = &outcome {
            let owner = children::owner_ref(c.as_ref());
            desired.extend(
                desired::component_children(&tenant, &c, t)
                    .into_iter()
                    .map(|k| children::prepare(&ctx.kinds, k, owner.clone())),
            );
        }
        plans.push(ComponentPlan {
            component: c,
            level,
            outcome,
            probe_stall: None,
        });
    }

    // Meter and apply at once: the ledger only has to be durable before the change is reported
    // done (the statuses below), and doing both together takes a write off every change's
    // latency.
    // By name; read once, so that what is metered is what the statuses report.
    let pkgs = ctx.packages.objects_in(&ns).map_err(Error::Unreadable)?;
    let stalled_components: BTreeSet<String> = plans
        .iter()
        .filter(|p| p.outcome.is_err())
        .map(|p| p.component.name_any())
        .collect();
    // A stalled component is billed as its ledger last recorded it (see
    // `ledger::with_stalled_as_recorded`), not as its spec asks.
    let meter_components = plans
        .iter()
        .filter(|p| p.outcome.is_ok())
        .map(|p| regie_crds::generated::SegmentComponent {
            name: p.component.name_any(),
            class: p.component.spec.class,
            service_level: p.level.clone(),
        })
        .collect();
    let meter_accounts: Vec<_> = pkgs
        .iter()
        .filter_map(|p| package_billing(&ctx, p).map(|a| (p.spec.profile.clone(), a)))
        .collect();
    let billable = super::metering::billable_state(&tier.name, &meter_accounts, meter_components);
    let namespace = ctx.index.get(&("Namespace".into(), None, ns.clone()));
    let namespace_terminating = namespace.as_ref().is_some_and(|k| k.terminating);
    // The workloads go first, alone: a tier change is felt through them (replicas, budgets,
    // spread), and on an API server with one core a dozen concurrent writes would each wait for
    // all the others. The ledger and the rest of the children follow together.
    // In a new namespace they wait for it, with the rest.
    let (workloads, rest): (Vec<_>, Vec<_>) = desired
        .iter()
        .partition(|p| namespace.is_some() && is_workload(&p.child));
    tracing::debug!("plan built");
    if !namespace_terminating {
        let applied = in_order(workloads.into_iter().map(|e| apply_child(&ctx, &name, e)))
            .await
            .map(|_| ());
        if let Some(next) = stall_if_rejected(&ctx, &tenant, applied).await? {
            return Ok(next);
        }
    }
    tracing::debug!("workloads applied");
    let (metered, applied) = tokio::join!(
        super::metering::record(&ctx, &tenant, &billable, &stalled_components),
        async {
            if namespace_terminating {
                return Ok(());
            }
            apply_and_prune(&ctx, &name, &rest, &desired, &ns, &stalled_components).await
        }
    );
    metered?;
    if let Some(next) = stall_if_rejected(&ctx, &tenant, applied).await? {
        return Ok(next);
    }

    // Status: components, packages, then the tenant's roll-up.
    let now = ctx.now();
    let quota_short = QuotaShort::of(&desired);
    let mut rollup = Rollup::default();
    let mut root_causes = Vec::new();
    for plan in &mut plans {
        let tier = plan.outcome.as_ref().ok();
        plan.probe_stall = super::probing::sync_component(&ctx, &tenant, &plan.component, tier);
    }
    super::probing::retain(&ctx, &name, plans.iter().map(|p| p.component.as_ref()));
    // The children's statuses are independent of each other: write them together.
    let ctx_ref = ctx.as_ref();
    let (component_results, package_results) = tokio::join!(
        futures::future::try_join_all(plans.iter().map(|plan| write_component_status(
            ctx_ref,
            plan,
            namespace_terminating,
            &quota_short,
            now
        ))),
        futures::future::try_join_all(pkgs.iter().map(|p| write_package_status(ctx_ref, p, now))),
    );
    for (plan, ready) in plans.iter().zip(component_results?) {
        rollup.total += 1;
        match ready {
            Ok(()) => rollup.ready += 1,
            Err(cause) => {
                rollup.not_ready.push(plan.component.name_any());
                root_causes.push(format!(
                    "HostingComponent {}: {}",
                    plan.component.name_any(),
                    cause
                ));
            }
        }
    }
    let mut accounts = 0;
    let mut packages = Rollup::default();
    for (p, (valid, billed)) in pkgs.iter().zip(package_results?) {
        packages.total += 1;
        accounts += billed;
        if valid {
            packages.ready += 1;
        } else {
            packages.not_ready.push(p.name_any());
            root_causes.push(format!("WorkplacePackage {}: invalid spec", p.name_any()));
        }
    }
    let outcome = if namespace_terminating {
        TenantOutcome::Waiting(format!("namespace {ns} is still terminating"))
    } else if root_causes.is_empty() {
        TenantOutcome::Ready
    } else {
        TenantOutcome::ChildrenNotReady(root_causes.join("; "))
    };
    let summary = TenantSummary {
        namespace: ns,
        level: tier.name.clone(),
        accounts,
        components: rollup,
        packages,
    };
    write_tenant_status(&ctx, &tenant, outcome, Some(summary)).await?;
    tracing::debug!("reconciled");
    ctx.metrics
        .reconciles
        .with_label_values(&["Tenant", "ok"])
        .inc();
    if namespace_terminating {
        return Ok(Next::After(Duration::from_secs(2)));
    }
    // The periodic resync comes from one walk over all tenants (`controller::resync`), not from
    // an entry per tenant in the controller's queue.
    Ok(Next::AwaitChange)
}

fn resolve_tier(ctx: &Context, level: &str) -> Result<Tier, Stall> {
    match ctx.levels.get(&ObjectRef::new(level)) {
        None => Err(Stall {
            reason: "ServiceLevelNotFound",
            message: unknown_level(level, {
                let mut names: Vec<String> =
                    ctx.levels.state().iter().map(|l| l.name_any()).collect();
                names.sort();
                names
            }),
        }),
        Some(l) => Tier::from_level(&l).map_err(|errs| Stall {
            reason: "ServiceLevelInvalid",
            message: format!("ServiceLevel {level} is invalid: {}", join(&errs)),
        }),
    }
}

/// Whether a child runs or protects a workload: applied before the rest of a change.
fn is_workload(child: &Child) -> bool {
    matches!(child.kind.as_str(), "Deployment" | "PodDisruptionBudget")
}

/// Applies `to_apply` — a new namespace before everything that lives in it, the rest
/// concurrently — then deletes what carries this tenant's label but is not in `desired`.
/// Components that are stalled (by name, in namespace `ns`) keep their children: bad input must
/// not take a running service down.
async fn apply_and_prune(
    ctx: &Context,
    tenant: &str,
    to_apply: &[&Prepared],
    desired: &[Prepared],
    ns: &str,
    stalled_components: &BTreeSet<String>,
) -> Result<(), Error> {
    // A namespace that exists already is applied with the rest: a tier change then costs one
    // round trip to the API server, not two.
    let (namespaces, contents): (Vec<&&Prepared>, Vec<_>) = to_apply
        .iter()
        .partition(|p| p.child.kind == "Namespace" && ctx.index.get(&key_of(&p.child)).is_none());
    for entry in namespaces {
        refuse_foreign_namespace(ctx, tenant, &entry.child.name).await?;
        apply_child(ctx, tenant, entry).await?;
        ctx.release_namespace_claim(&entry.child.name, tenant);
    }
    in_order(contents.into_iter().map(|e| apply_child(ctx, tenant, e))).await?;
    let wanted: BTreeSet<ChildKey> = desired.iter().map(|p| key_of(&p.child)).collect();
    let mut left_behind = Vec::new();
    let unwanted = ctx
        .index
        .of_tenant(tenant)
        .into_iter()
        .filter(|(key, known)| {
            let of_stalled = key.1.as_deref() == Some(ns) && stalled_components.contains(&key.2);
            if wanted.contains(key) || known.terminating || of_stalled {
                return false;
            }
            // A namespace this tenant left (its `spec.namespace` changed) is not deleted while
            // components or packages are in it: deleting it would delete them.
            let held = key.0 == "Namespace" && ctx.holds_regie_objects(&key.2);
            if held {
                left_behind.push(key.2.clone());
            }
            !held
        })
        .map(|(key, _)| key)
        .collect::<std::collections::BTreeSet<_>>();
    in_order(unwanted.iter().map(|key| async move {
        children::delete(
            &ctx.client,
            &ctx.kinds,
            &ctx.index,
            &ctx.metrics,
            key,
            tenant,
        )
        .await
        .map_err(|e| refused(e, "deletion of", &key.0, key.1.as_deref(), &key.2))
    }))
    .await?;
    for ns in left_behind {
        mark_orphans_in(ctx, &ns).await;
    }
    Ok(())
}

/// Runs `writes` together, each to its end, and returns the first error in their order, not in
/// time: with two children refused, the tenant's Stalled message always names the same one
/// (one that alternated would be a status write and an event at every retry).
async fn in_order<T>(
    writes: impl IntoIterator<Item = impl std::future::Future<Output = Result<T, Error>>>,
) -> Result<Vec<T>, Error> {
    futures::future::join_all(writes)
        .await
        .into_iter()
        .collect()
}

/// regie takes over no namespace it did not create, but for the tenant's own `tenant-<name>`,
/// which a pipeline may create before regie does so that the tenant's components can be applied
/// in one go. A namespace named in `spec.namespace` — `regie-system`, `monitoring`, a team's
/// own — would otherwise be labelled, isolated and opened to the tenant's groups with `edit` (in
/// regie's own namespace: its billing token), and deleted with the tenant or when the name is
/// corrected. Asked only when the watch does not know the namespace as regie's: once per new
/// namespace, a read.
async fn refuse_foreign_namespace(ctx: &Context, tenant: &str, ns: &str) -> Result<(), Error> {
    if ns.strip_prefix(regie_crds::tenancy::NAMESPACE_PREFIX) == Some(tenant) {
        return Ok(());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    let Some(live) = api.get_metadata_opt(ns).await? else {
        return Ok(());
    };
    let labels = live.labels();
    let made_by_regie = labels.get(desired::LABEL_MANAGED_BY).map(String::as_str)
        == Some(desired::MANAGER)
        && labels.get(desired::LABEL_TENANT).map(String::as_str) == Some(tenant);
    if made_by_regie {
        return Ok(());
    }
    Err(Error::Rejected(Stall {
        reason: "NamespaceNotOwned",
        message: format!(
            "namespace {ns} exists and was not made by regie for this tenant: regie takes over \
             no existing namespace but the tenant's own tenant-{tenant} (name a new one, or hand \
             this one over by labelling it {}={} and {}={tenant})",
            desired::LABEL_MANAGED_BY,
            desired::MANAGER,
            desired::LABEL_TENANT
        ),
    }))
}

/// What is in a namespace of no tenant — one its tenant left, unless another names it (that one
/// takes it over), or one found so at start — is Stalled, so that nobody reads an old Ready
/// there, or no status at all.
pub(super) async fn mark_orphans_in(ctx: &Context, ns: &str) {
    if ctx.tenant_name_of_namespace(ns).is_some() {
        return;
    }
    for c in ctx.components.in_namespace(ns) {
        if let Some(c) = c.object() {
            mark_orphan_component(ctx, &c).await;
        }
    }
    for p in ctx.packages.in_namespace(ns) {
        if let Some(p) = p.object() {
            mark_orphan_package(ctx, &p).await;
        }
    }
}

async fn apply_child(ctx: &Context, tenant: &str, prepared: &Prepared) -> Result<bool, Error> {
    children::apply(
        &ctx.client,
        &ctx.kinds,
        &ctx.index,
        &ctx.metrics,
        tenant,
        prepared,
    )
    .await
    .map_err(|e| {
        refused(
            e,
            "apply of",
            &prepared.child.kind,
            prepared.child.namespace.as_deref(),
            &prepared.child.name,
        )
    })
}

/// An error that sending the same request again will not change — invalid, or forbidden (RBAC
/// or an admission policy) — as [`Error::Rejected`]; others as they are, retried soon.
fn refused(e: kube::Error, what: &str, kind: &str, ns: Option<&str>, name: &str) -> Error {
    match e {
        kube::Error::Api(s) if [400, 403, 422].contains(&s.code) => {
            let place = ns.map_or(String::new(), |ns| format!("{ns}/"));
            Error::Rejected(Stall {
                reason: "ApplyRejected",
                message: format!(
                    "{what} {kind} {place}{name} refused by the API server: {}",
                    s.message
                ),
            })
        }
        e => Error::Kube(e),
    }
}

/// A refused child stalls the tenant with the server's message, and it is tried again in a
/// minute rather than seconds (see [`REJECTED_RETRY`]); other errors pass through.
async fn stall_if_rejected(
    ctx: &Context,
    tenant: &Tenant,
    applied: Result<(), Error>,
) -> Result<Option<Next>, Error> {
    match applied {
        Err(Error::Rejected(stall)) => {
            write_tenant_status(ctx, tenant, TenantOutcome::Stalled(stall), None).await?;
            ctx.metrics
                .reconciles
                .with_label_values(&["Tenant", "stalled"])
                .inc();
            Ok(Some(Next::After(REJECTED_RETRY)))
        }
        other => other.map(|()| None),
    }
}

async fn ensure_finalizer(tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    if tenant.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = tenant.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": tenant.resource_version()}});
    api.patch(
        &tenant.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    ctx.metrics.write("patch", "Tenant");
    Ok(())
}

/// When offboarding looks again at namespaces still going, `deleting_for` into the tenant's
/// deletion: at once at first, then less often — a namespace stuck terminating (a finalizer
/// whose controller is gone) costs a few requests a minute, not several a second, for as long
/// as it stays.
fn offboarding_retry(deleting_for: Duration) -> Duration {
    (deleting_for / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Offboarding: the tenant's namespaces — its own and any it left when its `spec.namespace`
/// changed — go (and with them every component and package in them), then the finalizer is
/// released, once none of them is left: a tenant gone is a tenant cleaned up.
async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Next, Error> {
    let name = tenant.name_any();
    if !tenant.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Next::AwaitChange);
    }
    super::metering::close(ctx, tenant).await?;
    // Invoicing: the final invoice, up to this instant, is written before the namespace goes.
    if !super::invoicing::offboard(ctx, tenant).await? {
        return Ok(Next::After(Duration::from_secs(30)));
    }
    super::probing::retain(ctx, &name, std::iter::empty());
    // Namespaces are the only cluster-scoped children.
    let mut namespaces: BTreeSet<String> = ctx
        .index
        .of_tenant(&name)
        .into_iter()
        .filter(|(key, _)| key.1.is_none())
        .map(|(key, _)| key.2)
        .collect();
    namespaces.insert(tenant_namespace(tenant));
    let going = in_order(
        namespaces
            .iter()
            .map(|ns| offboard_namespace(ctx, &name, ns)),
    )
    .await?;
    if going.into_iter().any(|g| g) {
        // The namespaces' watch reconciles the tenant when they go; this look is the fallback.
        let deleting_for = tenant
            .meta()
            .deletion_timestamp
            .as_ref()
            .and_then(|t| ctx.now().duration_since(t.0).try_into().ok())
            .unwrap_or_default();
        return Ok(Next::After(offboarding_retry(deleting_for)));
    }
    let finalizers: Vec<String> = tenant
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": tenant.resource_version()}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    ctx.metrics.write("patch", "Tenant");
    ctx.forget_namespace_claims_of(&name);
    tracing::info!(tenant = %name, "tenant removed; finalizer released");
    Ok(Next::AwaitChange)
}

/// Deletes namespace `ns` of an offboarded tenant; true while it is going. Left in place, with
/// a warning, when it is not labelled for this tenant (another tenant's now, or never taken
/// over: the tenant stalled before its first apply) or regie never applied it.
async fn offboard_namespace(ctx: &Context, tenant: &str, ns: &str) -> Result<bool, Error> {
    let key: ChildKey = ("Namespace".into(), None, ns.to_string());
    let Some(kind) = ctx.kinds.iter().find(|k| k.kind == "Namespace") else {
        return Ok(false);
    };
    let api = children::api_for(&ctx.client, kind, None);
    let Some(live) = api.get_metadata_opt(ns).await? else {
        ctx.index.forget(&key);
        return Ok(false);
    };
    if live.labels().get(desired::LABEL_TENANT).map(String::as_str) != Some(tenant) {
        tracing::warn!(%tenant, namespace = %ns, "namespace not labelled for this tenant; left in place");
        return Ok(false);
    }
    if live.metadata.deletion_timestamp.is_some() {
        return Ok(true);
    }
    // Read once: the label above and regie's field manager below.
    Ok(children::delete_read(&api, &ctx.index, &ctx.metrics, &key, &live.metadata, false).await?)
}

enum TenantOutcome {
    Ready,
    Stalled(Stall),
    ChildrenNotReady(String),
    Waiting(String),
}

struct TenantSummary {
    namespace: String,
    level: String,
    accounts: i64,
    components: Rollup,
    packages: Rollup,
}

/// The three kstatus conditions for one outcome, merged into `conditions`.
fn set_kstatus(
    conditions: &mut Vec<Condition>,
    generation: Option<i64>,
    now: &Time,
    ready: Result<&str, (&str, &str)>,
    stalled: Option<&Stall>,
    reconciling: Option<&str>,
) {
    let (ready_ok, ready_reason, ready_msg) = match ready {
        Ok(msg) => (true, "Ready", msg),
        Err((reason, msg)) => (false, reason, msg),
    };
    status::set_condition(
        conditions,
        status::condition(
            READY,
            ready_ok,
            ready_reason,
            ready_msg,
            generation,
            now.clone(),
        ),
    );
    status::set_condition(
        conditions,
        match stalled {
            Some(s) => status::condition(
                STALLED,
                true,
                s.reason,
                s.message.clone(),
                generation,
                now.clone(),
            ),
            None => status::condition(
                STALLED,
                false,
                "NotStalled",
                status::NOTHING_BLOCKS,
                generation,
                now.clone(),
            ),
        },
    );
    status::set_condition(
        conditions,
        match reconciling {
            Some(m) => {
                status::condition(RECONCILING, true, "Progressing", m, generation, now.clone())
            }
            None => status::condition(
                RECONCILING,
                false,
                "Settled",
                status::NO_WORK_IN_PROGRESS,
                generation,
                now.clone(),
            ),
        },
    );
}

fn to_time(t: jiff::Timestamp) -> Time {
    Time(t)
}

async fn write_tenant_status(
    ctx: &Context,
    tenant: &Tenant,
    outcome: TenantOutcome,
    summary: Option<TenantSummary>,
) -> Result<(), Error> {
    let old = tenant.status.clone().unwrap_or_default();
    let mut new = TenantStatus {
        conditions: old.conditions.clone(),
        ..TenantStatus::default()
    };
    let generation = tenant.meta().generation;
    new.observed_generation = generation;
    let now = to_time(ctx.now());
    let stall = match &outcome {
        TenantOutcome::Stalled(s) => Some(s.clone()),
        TenantOutcome::ChildrenNotReady(m) => Some(Stall {
            reason: "ChildStalled",
            message: m.clone(),
        }),
        _ => None,
    };
    match &outcome {
        TenantOutcome::Ready => set_kstatus(
            &mut new.conditions,
            generation,
            &now,
            Ok(status::TENANT_IN_SYNC),
            None,
            None,
        ),
        TenantOutcome::Stalled(s) => set_kstatus(
            &mut new.conditions,
            generation,
            &now,
            Err((s.reason, &s.message)),
            stall.as_ref(),
            None,
        ),
        TenantOutcome::ChildrenNotReady(m) => set_kstatus(
            &mut new.conditions,
            generation,
            &now,
            Err(("ChildrenNotReady", m)),
            stall.as_ref(),
            None,
        ),
        TenantOutcome::Waiting(m) => set_kstatus(
            &mut new.conditions,
            generation,
            &now,
            Err(("Progressing", m)),
            None,
            Some(m),
        ),
    }
    if let Some(s) = summary {
        new.namespace = Some(s.namespace);
        new.service_level = Some(s.level.into());
        new.accounts = Some(s.accounts);
        new.components_summary =
            Some(format!("{}/{}", s.components.ready, s.components.total).into());
        new.components = Some(s.components);
        new.packages = Some(s.packages);
    } else {
        new.namespace = old.namespace.clone();
        new.service_level = old.service_level.clone();
        new.accounts = old.accounts;
        new.components = old.components.clone();
        new.packages = old.packages.clone();
        new.components_summary = old.components_summary.clone();
    }
    let Some(write) = compare_with(ctx, tenant, &old, &old.conditions, &new) else {
        return Ok(());
    };
    warn_on_new_stall(ctx, tenant, write.was, &new.conditions).await;
    patch_status(ctx, tenant, &new, write.digest).await
}

/// The conditions `new` is to be compared with for its Warnings, or `None` when there is
/// nothing to write (see [`super::memo::StatusMemo::compare_with`]). The cached status is not
/// always what the API server holds: a change and its revert in quick succession (A, B, A) left
/// the status at B when the third reconcile, reading A from a cache that had not seen B's
/// status, found nothing to write; and a reconcile before the cache showed a stall just written
/// published its Warning again.
fn compare_with<'a, K: Resource<DynamicType = ()>, S: Serialize + PartialEq>(
    ctx: &Context,
    obj: &K,
    old: &S,
    cached: &'a [Condition],
    new: &S,
) -> Option<ToWrite<'a>> {
    let digest = status_digest(new);
    let was = ctx.status_memo.compare_with(
        obj.meta().uid.as_deref().unwrap_or_default(),
        obj.meta().resource_version.as_deref(),
        digest,
        std::time::Instant::now(),
        cached,
        new == old,
    )?;
    Some(ToWrite { was, digest })
}

/// A status to write: the conditions it is compared with, and the digest the memo keeps of it
/// (worked out once, for the comparison and for the record of the write).
struct ToWrite<'a> {
    was: &'a [Condition],
    digest: u64,
}

/// The digest the status memo keeps of a status: without its conditions' transition times,
/// which are whole seconds of the clock. Two reconciles a second apart that both see a stall
/// begin (the second before the cache shows the first's write) build the same status but for
/// that time; it is the same status, and its Warning went out with the first.
fn status_digest(status: &impl Serialize) -> u64 {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(conditions) = value
        .get_mut("conditions")
        .and_then(serde_json::Value::as_array_mut)
    {
        for c in conditions {
            if let Some(c) = c.as_object_mut() {
                c.remove("lastTransitionTime");
            }
        }
    }
    cache::digest(&value)
}

/// Publishes one Warning event when an object becomes Stalled (not on every reconcile), and
/// counts it in `regie_reconcile_errors_total` under its reason: what the `RegieStalledObjects`
/// alert watches, for components and packages (a probe target refused, an invalid spec) as
/// for tenants.
async fn warn_on_new_stall<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    let was = status::find(old, STALLED)
        .filter(|c| c.status == "True")
        .map(|c| (&c.reason, &c.message));
    let Some(now) = status::find(new, STALLED).filter(|c| c.status == "True") else {
        return;
    };
    if was == Some((&now.reason, &now.message)) {
        return;
    }
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[K::kind(&()).as_ref(), now.reason.to_string().as_str()])
        .inc();
    ctx.warn(obj, &now.reason, "Reconcile", &now.message).await;
}

/// A hosted component's `Available` condition: whether at least `floor` of its `wanted`
/// replicas are available, its reason and message. When fewer pods than wanted exist
/// (`created`) and the tenant's quota cannot hold its components' replicas (`quota_short`, from
/// [`desired::quota_shortfalls`] without rollout room), the message adds it: their creation is
/// refused, which the Deployment alone shows only in its ReplicaSets' events. Pods that exist
/// and do not run (an image, a crash) are no quota's doing: no note. The reason stays the
/// counts'.
fn availability<'a>(
    available: i32,
    created: i32,
    wanted: i32,
    floor: i32,
    quota_short: impl FnOnce() -> &'a [String],
) -> (bool, &'static str, String) {
    let enough = available >= floor;
    let mut message = status::replicas_message(available, wanted, floor);
    if available < wanted && created < wanted {
        let short = quota_short();
        if !short.is_empty() {
            message = format!("{message}{QUOTA_NOTE}{}", short.join("; "));
        }
    }
    let reason = if enough {
        "MinimumReplicasAvailable"
    } else {
        "ReplicasUnavailable"
    };
    (enough, reason, message)
}

/// The `Available` of a stalled component whose Deployment exists: regie leaves that workload
/// as it was, and says what it has — Unknown, since the level whose floor would judge it is
/// what regie cannot read or apply. Kept as it was, the condition went on reporting the last
/// counts before the stall, however the pods fared since.
fn stalled_availability(
    counts: super::children::ReplicaCounts,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    let mut condition = status::condition(
        AVAILABLE,
        false,
        "Stalled",
        format!(
            "{} of {} replicas available; the component is stalled (see Stalled), and regie \
             leaves its workload as it was",
            counts.available, counts.desired
        ),
        generation,
        now,
    );
    condition.status = "Unknown".into();
    condition
}

/// Whether `conditions` hold an `Available` the prober of a SaaS component wrote, or the
/// placeholder that waits for it — not one left from when the component was hosted.
fn probed_availability(conditions: &[Condition]) -> bool {
    status::find(conditions, AVAILABLE).is_some_and(|a| {
        [
            super::probing::SUCCEEDED,
            super::probing::FAILED,
            "NotProbedYet",
        ]
        .contains(&a.reason.as_ref())
    })
}

/// What a tenant's quota lacks for its components' replicas ([`desired::quota_shortfalls`]
/// without rollout room), worked out when a component first asks: only one with fewer pods
/// than it wants does, so a reconcile of a tenant whose pods all exist (a tier change) does
/// not.
struct QuotaShort<'a> {
    desired: &'a [Prepared],
    short: std::sync::OnceLock<Vec<String>>,
}

impl<'a> QuotaShort<'a> {
    fn of(desired: &'a [Prepared]) -> Self {
        QuotaShort {
            desired,
            short: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> &[String] {
        self.short
            .get_or_init(|| desired::quota_shortfalls(self.desired.iter().map(|p| &p.child), false))
    }
}

/// Where an `Available` message says the tenant's quota is short, before what it lacks.
const QUOTA_NOTE: &str =
    "; the tenant's ResourceQuota cannot hold its components' replicas, some pods are refused: ";

/// The reason of the Warning event that announces a quota too small.
const QUOTA_EXCEEDED: &str = "QuotaExceeded";

/// A Warning event when a component's `Available` message newly says its tenant's quota is
/// too small, or says it lacks something else now — not when only its replica counts change.
async fn warn_on_new_quota_shortfall<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    let short = |conditions: &[Condition]| {
        status::find(conditions, AVAILABLE)
            .and_then(|c| c.message.split_once(QUOTA_NOTE).map(|(_, s)| s.to_string()))
    };
    let Some(now) = short(new) else {
        return;
    };
    if short(old).as_deref() == Some(now.as_str()) {
        return;
    }
    let message = format!("the tenant's ResourceQuota cannot hold its components' replicas: {now}");
    ctx.warn(obj, QUOTA_EXCEEDED, "Reconcile", &message).await;
}

/// Writes `status` of digest `digest`, once `compare_with` found it is to be written.
async fn patch_status<K>(
    ctx: &Context,
    obj: &K,
    status: &impl Serialize,
    digest: u64,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let resource = kube::core::ApiResource::erase::<K>(&());
    let api: Api<kube::api::DynamicObject> = match obj.meta().namespace.as_deref() {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let body = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(children::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    ctx.metrics.write("status", &K::kind(&()));
    if !uid.is_empty() {
        ctx.status_memo.record(
            &uid,
            digest,
            written.metadata.resource_version.as_deref(),
            std::time::Instant::now(),
        );
    }
    Ok(())
}

/// Writes a component's status; Ok when it is Ready, else the root cause. In a namespace that
/// is terminating a component is not Ready, whatever its workload: it goes with the namespace.
async fn write_component_status(
    ctx: &Context,
    plan: &ComponentPlan,
    namespace_terminating: bool,
    quota_short: &QuotaShort<'_>,
    now: jiff::Timestamp,
) -> Result<Result<(), String>, Error> {
    let c = &plan.component;
    let old = c.status.clone().unwrap_or_default();
    let generation = c.meta().generation;
    let now = to_time(now);
    let mut new = HostingComponentStatus {
        conditions: old.conditions.clone(),
        observed_generation: generation,
        service_level: Some(plan.level.as_str().into()),
        mode: Some(
            if c.spec.saas.is_some() {
                "saas"
            } else {
                "hosted"
            }
            .into(),
        ),
        availability: old.availability.clone(),
        ..HostingComponentStatus::default()
    };
    let result = match &plan.outcome {
        Err(stall) => {
            set_kstatus(
                &mut new.conditions,
                generation,
                &now,
                Err((stall.reason, &stall.message)),
                Some(stall),
                None,
            );
            if let Some(counts) = ctx.deployment_replicas(c) {
                status::set_condition(
                    &mut new.conditions,
                    stalled_availability(counts, generation, now.clone()),
                );
            }
            Err(format!("{}: {}", stall.reason, stall.message))
        }
        Ok(tier) => {
            let going = namespace_terminating.then(|| {
                format!(
                    "namespace {} is terminating; this component goes with it",
                    c.namespace().unwrap_or_default()
                )
            });
            let probe_stall = plan.probe_stall.as_ref();
            let ready = match (probe_stall, &going) {
                (Some(stall), _) => Err((stall.reason, stall.message.as_str())),
                (None, Some(message)) => Err(("NamespaceTerminating", message.as_str())),
                (None, None) => Ok(status::WORKLOAD_IN_SYNC),
            };
            set_kstatus(
                &mut new.conditions,
                generation,
                &now,
                ready,
                probe_stall,
                going.as_deref(),
            );
            if let Some(saas) = &c.spec.saas {
                new.probe_url = Some(saas.url.clone());
                // The prober sets Available for SaaS; until it has, say so — also over what
                // the component said while it was hosted (its replica counts).
                if !probed_availability(&new.conditions) {
                    status::set_condition(
                        &mut new.conditions,
                        status::condition(
                            AVAILABLE,
                            false,
                            "NotProbedYet",
                            status::NOT_PROBED_YET,
                            generation,
                            now.clone(),
                        ),
                    );
                }
            } else {
                new.replicas = Some(desired::replicas(c, tier));
                new.probe_url = desired::hosted_probe_url(
                    &ctx.tenant_of_namespace(&c.namespace().unwrap_or_default())
                        .map(|t| (*t).clone())
                        .unwrap_or_else(|| placeholder_tenant(c)),
                    c,
                );
                let counts = ctx.deployment_replicas(c);
                let wanted = new.replicas.unwrap_or(1);
                let floor = tier.min_available.max(1);
                let available = counts.map_or(0, |r| r.available);
                let created = counts.map_or(0, |r| r.created);
                new.available_replicas = Some(available);
                let (enough, reason, message) =
                    availability(available, created, wanted, floor, || quota_short.get());
                let cond =
                    status::condition(AVAILABLE, enough, reason, message, generation, now.clone());
                status::set_condition(&mut new.conditions, cond);
            }
            match probe_stall {
                Some(stall) => Err(format!("{}: {}", stall.reason, stall.message)),
                None => going.map_or(Ok(()), Err),
            }
        }
    };
    if let Some(write) = compare_with(ctx, c.as_ref(), &old, &old.conditions, &new) {
        warn_on_new_stall(ctx, c.as_ref(), write.was, &new.conditions).await;
        warn_on_new_quota_shortfall(ctx, c.as_ref(), write.was, &new.conditions).await;
        patch_status(ctx, c.as_ref(), &new, write.digest).await?;
    }
    Ok(result)
}

fn placeholder_tenant(c: &HostingComponent) -> Tenant {
    let ns = c.namespace().unwrap_or_default();
    let mut t = Tenant::new(
        ns.trim_start_matches(regie_crds::tenancy::NAMESPACE_PREFIX),
        serde_json::from_value(
            json!({"displayName": "", "serviceLevel": "", "membership": {"joined": "1970-01-01"}}),
        )
        .expect("static spec"),
    );
    t.spec.namespace = Some(ns);
    t
}

/// Writes a package's status; the billed accounts when valid.
/// What a package is billed. A valid one: what its accounts come to (see `accounts`). An
/// invalid one: what its status last recorded, as a stalled component is billed as its ledger
/// last recorded it — bad input changes no bill, nor does the bill then differ from what the
/// statuses report; nothing when nothing was recorded, or when its profile, which prices it,
/// is itself what is invalid.
fn package_billing(
    ctx: &Context,
    p: &WorkplacePackage,
) -> Option<super::accounts::PackageAccounts> {
    let errors = p.spec.validate();
    if errors.is_empty() {
        return Some(super::accounts::of_package(ctx, p));
    }
    if errors.iter().any(|e| e.path == "spec.profile") {
        return None;
    }
    let recorded = p.status.as_ref()?;
    Some(super::accounts::PackageAccounts {
        measured: recorded.measured_accounts,
        measured_at: recorded.measured_at.clone(),
        billed: recorded.billed_accounts?,
        condition: super::accounts::ConditionUpdate::Keep,
    })
}

/// Writes a package's status; whether its spec is valid, and the accounts it is billed for
/// (see [`package_billing`]).
async fn write_package_status(
    ctx: &Context,
    p: &WorkplacePackage,
    now: jiff::Timestamp,
) -> Result<(bool, i64), Error> {
    let old = p.status.clone().unwrap_or_default();
    let generation = p.meta().generation;
    let now = to_time(now);
    let errors = p.spec.validate();
    let accounts = super::accounts::of_package(ctx, p);
    let mut new = WorkplacePackageStatus {
        conditions: old.conditions.clone(),
        observed_generation: generation,
        measured_accounts: accounts.measured,
        measured_at: accounts.measured_at.clone(),
        ..WorkplacePackageStatus::default()
    };
    match &accounts.condition {
        super::accounts::ConditionUpdate::Keep => {}
        super::accounts::ConditionUpdate::Remove => new
            .conditions
            .retain(|c| c.type_ != super::accounts::CONDITION),
        super::accounts::ConditionUpdate::Set {
            ok,
            reason,
            message,
        } => {
            status::set_condition(
                &mut new.conditions,
                status::condition(
                    super::accounts::CONDITION,
                    *ok,
                    reason,
                    message.clone(),
                    generation,
                    now.clone(),
                ),
            );
        }
    }
    let billed = if errors.is_empty() {
        let billed = accounts.billed;
        new.billed_accounts = Some(billed);
        set_kstatus(
            &mut new.conditions,
            generation,
            &now,
            Ok(status::ACCOUNTS_RECORDED),
            None,
            None,
        );
        (true, billed)
    } else {
        let stall = Stall {
            reason: "InvalidSpec",
            message: join(&errors),
        };
        new.billed_accounts = package_billing(ctx, p).map(|a| a.billed);
        new.measured_accounts = old.measured_accounts;
        new.measured_at = old.measured_at.clone();
        set_kstatus(
            &mut new.conditions,
            generation,
            &now,
            Err((stall.reason, &stall.message)),
            Some(&stall),
            None,
        );
        (false, new.billed_accounts.unwrap_or(0))
    };
    if let Some(write) = compare_with(ctx, p, &old, &old.conditions, &new) {
        warn_on_new_stall(ctx, p, write.was, &new.conditions).await;
        super::accounts::warn_on_failure(ctx, p, write.was, &new.conditions).await;
        patch_status(ctx, p, &new, write.digest).await?;
    }
    Ok(billed)
}

fn orphan_stall(kind: &str, ns: &str) -> Stall {
    Stall {
        reason: "NoTenant",
        message: format!(
            "namespace {ns} belongs to no Tenant: a {kind} must live in its tenant's namespace"
        ),
    }
}

/// A component in a namespace no tenant owns: Stalled, until a tenant claims the namespace.
pub async fn mark_orphan_component(ctx: &Context, c: &HostingComponent) {
    if c.meta().deletion_timestamp.is_some() {
        return;
    }
    let ns = c.namespace().unwrap_or_default();
    let stall = orphan_stall("HostingComponent", &ns);
    let old = c.status.clone().unwrap_or_default();
    let mut new = HostingComponentStatus {
        conditions: old.conditions.clone(),
        observed_generation: c.meta().generation,
        ..HostingComponentStatus::default()
    };
    set_kstatus(
        &mut new.conditions,
        c.meta().generation,
        &to_time(ctx.now()),
        Err((stall.reason, &stall.message)),
        Some(&stall),
        None,
    );
    if let Some(write) = compare_with(ctx, c, &old, &old.conditions, &new) {
        warn_on_new_stall(ctx, c, write.was, &new.conditions).await;
        if let Err(e) = patch_status(ctx, c, &new, write.digest).await {
            tracing::warn!(error = %e, component = %c.name_any(), "cannot mark component stalled");
        }
    }
}

/// A package in a namespace no tenant owns: Stalled, until a tenant claims the namespace.
pub async fn mark_orphan_package(ctx: &Context, p: &WorkplacePackage) {
    if p.meta().deletion_timestamp.is_some() {
        return;
    }
    let ns = p.namespace().unwrap_or_default();
    let stall = orphan_stall("WorkplacePackage", &ns);
    let old = p.status.clone().unwrap_or_default();
    let mut new = WorkplacePackageStatus {
        conditions: old.conditions.clone(),
        observed_generation: p.meta().generation,
        ..WorkplacePackageStatus::default()
    };
    set_kstatus(
        &mut new.conditions,
        p.meta().generation,
        &to_time(ctx.now()),
        Err((stall.reason, &stall.message)),
        Some(&stall),
        None,
    );
    if let Some(write) = compare_with(ctx, p, &old, &old.conditions, &new) {
        warn_on_new_stall(ctx, p, write.was, &new.conditions).await;
        if let Err(e) = patch_status(ctx, p, &new, write.digest).await {
            tracing::warn!(error = %e, package = %p.name_any(), "cannot mark package stalled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component moved from hosted to SaaS waits for its first probe; it does not keep
    /// what its replica counts said.
    #[test]
    fn a_saas_components_availability_is_the_probers() {
        let at = |reason: &str| {
            vec![status::condition(
                AVAILABLE,
                false,
                reason,
                "x",
                Some(1),
                Time(jiff::Timestamp::UNIX_EPOCH),
            )]
        };
        assert!(!probed_availability(&[]));
        assert!(!probed_availability(&at("ReplicasUnavailable")));
        assert!(!probed_availability(&at("MinimumReplicasAvailable")));
        for probed in [
            super::super::probing::SUCCEEDED,
            super::super::probing::FAILED,
            "NotProbedYet",
        ] {
            assert!(probed_availability(&at(probed)), "{probed}");
        }
    }

    /// A component whose tenant's quota cannot hold its components' replicas, and which has
    /// fewer pods than it wants, says so in `Available`; its reason stays the counts'.
    #[test]
    fn availability_names_a_quota_too_small() {
        let short = ["pods 2 is less than the components' pods, 3".to_string()];
        assert_eq!(
            availability(0, 0, 2, 1, || &[]),
            (
                false,
                "ReplicasUnavailable",
                status::replicas_message(0, 2, 1)
            )
        );
        let (enough, reason, message) = availability(0, 1, 2, 1, || &short[..]);
        assert_eq!((enough, reason), (false, "ReplicasUnavailable"));
        assert_eq!(
            message,
            format!(
                "{}{QUOTA_NOTE}{}",
                status::replicas_message(0, 2, 1),
                short[0]
            )
        );
        let (enough, reason, message) = availability(1, 1, 2, 1, || &short[..]);
        assert_eq!((enough, reason), (true, "MinimumReplicasAvailable"));
        assert!(message.ends_with(&short[0]), "{message}");
        // Every pod exists, one does not run (a crash, an image): not the quota.
        assert_eq!(
            availability(1, 2, 2, 1, || &short[..]),
            (
                true,
                "MinimumReplicasAvailable",
                status::replicas_message(1, 2, 1)
            )
        );
        // All run: nothing is refused.
        assert_eq!(
            availability(2, 2, 2, 1, || &short[..]),
            (
                true,
                "MinimumReplicasAvailable",
                status::replicas_message(2, 2, 1)
            )
        );
    }

    /// The API server's answer to a patch of a tenant deleted meanwhile, as it comes.
    fn not_found(group: &str, kind: &str, name: &str) -> Error {
        let status: kube::core::Status = serde_json::from_value(json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
            "reason": "NotFound", "message": format!("{kind}.{group} \"{name}\" not found"),
            "details": {"name": name, "group": group, "kind": kind}
        }))
        .expect("a Status");
        Error::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn a_status_a_second_later_is_the_same_status() {
        let status = |at: &str| {
            json!({"observedGeneration": 2, "conditions": [
                {"type": "Stalled", "status": "True", "reason": "ServiceLevelNotFound",
                 "message": "m", "lastTransitionTime": at, "observedGeneration": 2}]})
        };
        assert_eq!(
            status_digest(&status("2026-12-07T12:00:00Z")),
            status_digest(&status("2026-12-07T12:00:01Z"))
        );
        let mut other = status("2026-12-07T12:00:00Z");
        other["conditions"][0]["message"] = json!("another");
        assert_ne!(
            status_digest(&status("2026-12-07T12:00:00Z")),
            status_digest(&other)
        );
    }

    #[test]
    fn only_the_tenant_itself_not_found_is_a_tenant_gone() {
        assert!(not_found("regie.dev", "tenants", "mover").is_gone_tenant("mover"));
        assert!(!not_found("regie.dev", "tenants", "mover").is_gone_tenant("leaver"));
        assert!(!not_found("regie.dev", "usages", "mover").is_gone_tenant("mover"));
        assert!(!not_found("", "namespaces", "mover").is_gone_tenant("mover"));
        assert!(!Error::Unreadable("x".into()).is_gone_tenant("mover"));
    }

    #[test]
    fn offboarding_looks_again_less_often_the_longer_it_takes() {
        let secs = Duration::from_secs;
        assert_eq!(offboarding_retry(Duration::ZERO), secs(1));
        assert_eq!(offboarding_retry(secs(5)), secs(1));
        assert_eq!(offboarding_retry(secs(100)), secs(10));
        assert_eq!(offboarding_retry(secs(86_400)), secs(60));
    }

    #[test]
    fn a_tenant_that_keeps_failing_is_tried_again_ever_later_up_to_five_minutes() {
        let secs = |n| retry_after(n).as_secs();
        assert_eq!(
            [1, 2, 3, 4, 5, 6, 7].map(secs),
            [5, 10, 20, 40, 80, 160, 300]
        );
        assert_eq!(secs(40), 300);
        assert_eq!(secs(u32::MAX), 300);
        // Called with no failure at all (never, but harmless): the first delay.
        assert_eq!(secs(0), 5);
    }
}
