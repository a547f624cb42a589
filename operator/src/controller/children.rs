//! The objects regie creates for tenants, as the controller sees them: which kinds, an index of
//! what exists (metadata only, plus a Deployment's replica counts), and apply and prune.
//!
//! Every child carries the annotation `regie.dev/applied-hash`, the SHA-256 of the body regie
//! last applied. Comparing it with the desired body's hash lets a resync of an unchanged world
//! make zero writes while the watches hold metadata only. A change by someone else to a child
//! shows as a new version of it — its `generation`, or its `resourceVersion` for the kinds
//! without one that no controller writes (see [`version_of`]) — and the child is applied over
//! again. After a restart no version is known to be regie's own: a child listed then is
//! regie's at the version listed unless its managed fields say that another manager changed
//! what regie applies after regie's last apply ([`super::views::changed_by_others`]) — then it is applied
//! again at once, as is a Deployment whose replicas differ from the desired ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::{NonZeroI64, NonZeroU64};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::views::{ChildMeta, DeploymentView};
use crate::desired::{Child, LABEL_MANAGED_BY, LABEL_TENANT, MANAGER};
use crate::metrics::Metrics;

pub const ANNOTATION_HASH: &str = "regie.dev/applied-hash";
pub const FIELD_MANAGER: &str = "regie";

/// A kind of child object and where the API serves it.
#[derive(Clone, Debug)]
pub struct ChildKind {
    pub kind: &'static str,
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// One kind regie creates: API group, version (None: the PodDisruptionBudget version the server
/// offers), kind, plural, namespaced.
type KindEntry = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    bool,
);

/// The kinds regie creates. The child index's keys point at these kind names too.
const KINDS: [KindEntry; 8] = [
    ("", Some("v1"), "Namespace", "namespaces", false),
    ("", Some("v1"), "ResourceQuota", "resourcequotas", true),
    ("", Some("v1"), "LimitRange", "limitranges", true),
    (
        "networking.k8s.io",
        Some("v1"),
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        Some("v1"),
        "RoleBinding",
        "rolebindings",
        true,
    ),
    ("apps", Some("v1"), "Deployment", "deployments", true),
    ("", Some("v1"), "Service", "services", true),
    (
        "policy",
        None,
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
];

/// The kinds regie creates, with the PodDisruptionBudget version this server offers.
pub fn child_kinds(pdb_version: &str) -> Vec<ChildKind> {
    KINDS
        .iter()
        .map(|&(group, version, kind, plural, namespaced)| ChildKind {
            kind,
            resource: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version.unwrap_or(pdb_version), kind),
                plural,
            ),
            namespaced,
        })
        .collect()
}

/// Asks the server which PodDisruptionBudget version it serves (`v1` from 1.21, else `v1beta1`).
pub async fn pdb_version(client: &Client) -> String {
    match client.list_api_group_resources("policy/v1").await {
        Ok(list)
            if list
                .resources
                .iter()
                .any(|r| r.name == "poddisruptionbudgets") =>
        {
            "v1".into()
        }
        _ => "v1beta1".into(),
    }
}

/// What regie knows of one existing child.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Known {
    /// One shared copy per tenant (interned by the index): a tenant has a dozen children.
    pub tenant: Option<Arc<str>>,
    /// The applied-hash annotation, decoded and shortened; None when absent or not regie's
    /// format.
    pub digest: Option<ShortDigest>,
    /// The child's version (see [`version_of`]); None also for 0, which the API server never
    /// gives an object.
    pub generation: Option<NonZeroI64>,
    /// The version regie's own last apply produced, or, for a child first seen carrying
    /// regie's annotation (listed after a restart), the version it was seen at.
    pub applied_generation: Option<NonZeroI64>,
    pub terminating: bool,
    /// Deployments only: (desired, available, updated) replicas and the observed generation.
    /// Boxed: one child in six is a Deployment, and the others' entries stay 24 bytes smaller.
    pub replicas: Option<Box<ReplicaCounts>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    pub desired: i32,
    /// Pods that exist, ready or not (`status.replicas`): fewer than desired when their
    /// creation was refused (a quota) or is still to come.
    pub created: i32,
    pub available: i32,
    pub updated: i32,
    pub observed_generation: i64,
}

/// Key of a child: kind, namespace, name.
pub type ChildKey = (String, Option<String>, String);

pub fn key_of(child: &Child) -> ChildKey {
    (
        child.kind.clone(),
        child.namespace.clone(),
        child.name.clone(),
    )
}

/// SHA-256 of an applied body.
pub type AppliedHash = [u8; 32];

/// What the index keeps of an [`AppliedHash`]: its first 64 bits, an index entry 25 bytes
/// smaller. It only tells whether a child is as desired; two different bodies alike in 64 bits
/// (one change in 2^64) would leave a child unapplied until its next change. The annotation is
/// no secret either way: it is a function of a body anyone can render.
pub type ShortDigest = NonZeroU64;

/// The first 64 bits of `hash` (the one value of 2^64 that is zero counts as one).
pub fn short(hash: &AppliedHash) -> ShortDigest {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    NonZeroU64::new(u64::from_be_bytes(first)).unwrap_or(NonZeroU64::MIN)
}

/// The version of a child by which a change by someone else shows: its `generation`, which
/// moves with its spec alone; for the kinds that have none and whose only writer is whoever
/// applies them (no controller keeps a status on them), its `resourceVersion`. A Service the
/// tenant's staff edit (their `edit` role allows it) shows so. Not a ResourceQuota: the quota
/// controller writes its status at every pod change, which moves its `resourceVersion` without
/// anything to correct.
pub fn version_of(kind: &str, meta: &kube::api::ObjectMeta) -> Option<NonZeroI64> {
    let by_resource_version = matches!(
        kind,
        "Service" | "LimitRange" | "RoleBinding" | "NetworkPolicy" | "Namespace"
    );
    match meta.generation {
        Some(g) => NonZeroI64::new(g),
        None if by_resource_version => meta
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok())
            .and_then(NonZeroI64::new),
        None => None,
    }
}

/// The position of `kind` in [`KINDS`]; None for a kind regie does not create.
fn kind_position(kind: &str) -> Option<u8> {
    KINDS.iter().position(|k| k.2 == kind).map(|i| i as u8)
}

/// Where a child belongs in the index: its group (the namespace it lives in; a Namespace's own
/// name for a Namespace) and its kind's position. None when the index cannot hold it: a kind
/// regie does not create, or a namespace that does not fit the kind.
fn locate(key: &ChildKey) -> Option<(&str, u8)> {
    let position = kind_position(&key.0)?;
    let group = match (&key.1, KINDS[position as usize].4) {
        (Some(namespace), true) => namespace.as_str(),
        (None, false) => key.2.as_str(),
        _ => return None,
    };
    Some((group, position))
}

/// One child in its group: the kind as its position in [`KINDS`], its name, what is known —
/// but for its tenant, which is its group's (see [`Group`]) unless it says otherwise.
#[derive(Debug)]
struct Entry {
    kind: u8,
    terminating: bool,
    /// Interned: most names are regie's fixed ones or a component's, shared by its Deployment,
    /// Service and budget; a Namespace's is its group's key.
    name: Arc<str>,
    digest: Option<ShortDigest>,
    generation: Option<NonZeroI64>,
    applied_generation: Option<NonZeroI64>,
    replicas: Option<Box<ReplicaCounts>>,
    /// Its tenant (interned) when that is not its group's: a child labelled for another tenant
    /// than the one whose namespace it is in, or for none. Boxed: never seen in practice.
    own_tenant: Option<Box<Option<Arc<str>>>>,
}

impl Entry {
    fn is(&self, kind: u8, name: &str) -> bool {
        self.kind == kind && *self.name == *name
    }

    fn key(&self, group: &str) -> ChildKey {
        let (_, _, kind, _, namespaced) = KINDS[self.kind as usize];
        (
            kind.to_string(),
            namespaced.then(|| group.to_string()),
            self.name.to_string(),
        )
    }

    fn tenant<'a>(&'a self, group: &'a Group) -> Option<&'a Arc<str>> {
        match &self.own_tenant {
            Some(own) => own.as_ref().as_ref(),
            None => group.tenant.as_ref(),
        }
    }

    fn known(&self, group: &Group) -> Known {
        Known {
            tenant: self.tenant(group).cloned(),
            digest: self.digest,
            generation: self.generation,
            applied_generation: self.applied_generation,
            terminating: self.terminating,
            replicas: self.replicas.clone(),
        }
    }

    /// The entry for what `known` says, but its tenant (see `own_tenant`).
    fn new(
        kind: u8,
        name: Arc<str>,
        own_tenant: Option<Box<Option<Arc<str>>>>,
        known: Known,
    ) -> Entry {
        // Destructured, so that a field added to `Known` cannot be forgotten here.
        let Known {
            tenant: _,
            digest,
            generation,
            applied_generation,
            terminating,
            replicas,
        } = known;
        Entry {
            kind,
            terminating,
            name,
            digest,
            generation,
            applied_generation,
            replicas,
            own_tenant,
        }
    }
}

/// The children in one namespace (a Namespace's own name for a Namespace), and the tenant they
/// are labelled for: the tenant of the first child seen, which every child of a tenant's
/// namespace shares. Kept once here instead of in each of a dozen entries.
#[derive(Debug)]
struct Group {
    tenant: Option<Arc<str>>,
    entries: Vec<Entry>,
}

/// The children grouped by namespace, and one shared copy of each name they use. A tenant's
/// dozen children are one short vector behind one hash lookup: finding a child allocates
/// nothing, and the index costs a vector slot per child instead of a hash-table bucket.
#[derive(Debug, Default)]
struct Entries {
    groups: HashMap<Arc<str>, Group>,
    /// Tenants' names, groups' keys and children's names, one copy each; a copy goes when only
    /// this set holds it.
    strings: HashSet<Arc<str>>,
}

impl Entries {
    fn get(&self, key: &ChildKey) -> Option<Known> {
        let (group, kind) = locate(key)?;
        let group = self.groups.get(group)?;
        group
            .entries
            .iter()
            .find(|e| e.is(kind, &key.2))
            .map(|e| e.known(group))
    }

    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(n) = self.strings.get(text) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(text);
        self.strings.insert(n.clone());
        n
    }

    fn insert(&mut self, key: &ChildKey, mut known: Known) {
        let Some((group, kind)) = locate(key) else {
            return;
        };
        let tenant = known.tenant.take().map(|t| self.intern(&t));
        if !self.groups.contains_key(group) {
            let group = self.intern(group);
            self.groups.insert(
                group,
                Group {
                    tenant: tenant.clone(),
                    entries: Vec::new(),
                },
            );
        }
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let own_tenant = (tenant != g.tenant).then(|| Box::new(tenant));
        let at = g.entries.iter().position(|e| e.is(kind, &key.2));
        let replaced = match at.and_then(|at| g.entries.get_mut(at)) {
            Some(e) => {
                let entry = Entry::new(kind, e.name.clone(), own_tenant, known);
                std::mem::replace(e, entry).own_tenant
            }
            None => {
                let entry = Entry::new(kind, self.intern(&key.2), own_tenant, known);
                let Some(g) = self.groups.get_mut(group) else {
                    return;
                };
                // Grown one at a time: a group holds about a dozen children for good, and the
                // doubling's spare slots would cost a third of them again.
                g.entries.reserve_exact(1);
                g.entries.push(entry);
                None
            }
        };
        if let Some(t) = replaced.and_then(|own| *own) {
            self.release(&t);
        }
    }

    fn remove(&mut self, key: &ChildKey) -> Option<Known> {
        let (group, kind) = locate(key)?;
        let g = self.groups.get_mut(group)?;
        let at = g.entries.iter().position(|e| e.is(kind, &key.2))?;
        let entry = g.entries.swap_remove(at);
        let emptied = g.entries.is_empty();
        let mut known = entry.known(g);
        // Each shared string below is then held once here, once by the set, and by any other user.
        let tenant = known.tenant.take();
        let name = entry.name.clone();
        drop(entry);
        if emptied && let Some((key, group)) = self.groups.remove_entry(group) {
            drop(group);
            self.release(&key);
        }
        self.release(&name);
        if let Some(t) = &tenant {
            self.release(t);
        }
        known.tenant = tenant;
        Some(known)
    }

    /// Drops a shared string once only the set and the caller's copy hold it.
    fn release(&mut self, text: &Arc<str>) {
        if Arc::strong_count(text) == 2 {
            self.strings.remove(text);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Group, &Entry)> {
        self.groups
            .iter()
            .flat_map(|(key, group)| group.entries.iter().map(move |e| (&**key, group, e)))
    }
}

/// Every child regie manages, as the watches report them.
#[derive(Clone, Debug, Default)]
pub struct ChildIndex {
    inner: Arc<Mutex<Entries>>,
    /// Kinds whose first full list has arrived; until all have, the index is incomplete.
    listed: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl ChildIndex {
    /// Waits until every one of `kinds` has been listed once. Reconciling before that would
    /// re-apply (or prune) children the index simply has not seen yet.
    pub async fn wait_listed(&self, kinds: usize) {
        loop {
            let n = self.listed.lock().map(|l| l.len()).unwrap_or(0);
            if n >= kinds {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn get(&self, key: &ChildKey) -> Option<Known> {
        self.lock().get(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A poisoned lock only means a panic elsewhere mid-update; the map is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Children labelled for `tenant`.
    pub fn of_tenant(&self, tenant: &str) -> Vec<(ChildKey, Known)> {
        let entries = self.lock();
        // Compared by the shared copy's address: a pointer per child, not a string.
        let Some(tenant) = entries.strings.get(tenant) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|(_, g, e)| e.tenant(g).is_some_and(|t| Arc::ptr_eq(t, tenant)))
            .map(|(key, g, e)| (e.key(key), e.known(g)))
            .collect()
    }

    /// Records a watch event; returns the tenant to reconcile when it changed something regie
    /// did not itself just write.
    fn observe(&self, key: ChildKey, mut known: Known) -> Option<String> {
        let mut map = self.lock();
        let previous = map.get(&key);
        known.applied_generation = match &previous {
            Some(p) => p.applied_generation,
            None => known
                .applied_generation
                .or(known.digest.and(known.generation)),
        };
        let interesting = match previous {
            None => true,
            Some(p) => {
                p.digest != known.digest
                    || p.terminating != known.terminating
                    || p.replicas != known.replicas
                    || (known.applied_generation.is_some()
                        && known.generation != known.applied_generation)
            }
        };
        let tenant = known.tenant.as_deref().map(String::from);
        map.insert(&key, known);
        if interesting { tenant } else { None }
    }

    fn remove(&self, key: &ChildKey) -> Option<String> {
        self.lock()
            .remove(key)
            .and_then(|k| k.tenant.as_deref().map(String::from))
    }

    /// Replaces every entry of one kind after a re-list.
    fn replace_kind(&self, kind: &str, fresh: Vec<(ChildKey, Known)>) -> Vec<String> {
        let mut entries = self.lock();
        let mut touched: Vec<String> = Vec::new();
        if let Some(position) = kind_position(kind) {
            for group in entries.groups.values_mut() {
                let Group { tenant, entries } = group;
                entries.retain(|e| {
                    if e.kind != position {
                        return true;
                    }
                    let own = e.own_tenant.as_deref().map(Option::as_ref);
                    touched.extend(own.unwrap_or(tenant.as_ref()).map(|t| t.to_string()));
                    false
                });
            }
            entries.groups.retain(|_, group| !group.entries.is_empty());
        }
        for (k, v) in fresh {
            if let Some(t) = &v.tenant {
                touched.push(t.to_string());
            }
            entries.insert(&k, v);
        }
        // Names only the dropped entries and groups used.
        entries.strings.retain(|n| Arc::strong_count(n) > 1);
        touched.sort();
        touched.dedup();
        touched
    }

    /// Records what regie's own apply produced, so its echo on the watch triggers nothing.
    pub fn applied(
        &self,
        key: ChildKey,
        tenant: &str,
        hash: AppliedHash,
        version: Option<NonZeroI64>,
        replicas: Option<i32>,
    ) {
        if locate(&key).is_none() {
            return;
        }
        let mut map = self.lock();
        let mut known = map.get(&key).unwrap_or_default();
        known.tenant = Some(map.intern(tenant));
        known.digest = Some(short(&hash));
        known.generation = version;
        known.applied_generation = version;
        // Else a reconcile before the watch's echo would take regie's own change for someone
        // else's (see `rescaled`).
        if let (Some(counts), Some(replicas)) = (known.replicas.as_mut(), replicas) {
            counts.desired = replicas;
        }
        map.insert(&key, known);
    }

    pub fn forget(&self, key: &ChildKey) {
        self.lock().remove(key);
    }

    /// Counts per kind, for the managed-objects gauge.
    pub fn counts(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for (_, _, e) in self.lock().iter() {
            *out.entry(KINDS[e.kind as usize].2.to_string()).or_insert(0) += 1;
        }
        out
    }
}

/// What `applied_generation` says of a child listed after a restart that another manager
/// changed after regie's last apply: a version no object has, so that the child is applied
/// again.
pub const CHANGED_BY_OTHERS: NonZeroI64 = NonZeroI64::MIN;

fn known_from_meta(kind: &str, meta: &kube::api::ObjectMeta, changed_by_others: bool) -> Known {
    Known {
        tenant: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_TENANT))
            .map(|t| Arc::from(t.as_str())),
        digest: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_HASH))
            .and_then(|h| parse_hex(h))
            .map(|h| short(&h)),
        generation: version_of(kind, meta),
        // Read where nothing is known of regie's own applies yet (see `observe` and the re-list).
        applied_generation: changed_by_others.then_some(CHANGED_BY_OTHERS),
        terminating: meta.deletion_timestamp.is_some(),
        replicas: None,
    }
}

fn selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER}")
}

/// Watches one kind of child into the index, sending the tenants whose children changed.
pub async fn watch_kind(
    client: Client,
    kind: ChildKind,
    index: ChildIndex,
    trigger: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let config = watcher::Config::default().labels(&selector());
    if kind.kind == "Deployment" {
        // Deployments are watched for their replica counts too (see `views`).
        let api: Api<DeploymentView> = Api::all(client);
        let stream = watcher::watcher(api, config);
        drive(stream, kind.kind, index, trigger, |d: &DeploymentView| {
            let mut known = known_from_meta(kind.kind, d.meta(), d.metadata.changed_by_others);
            let status = d.status.clone().unwrap_or_default();
            known.replicas = Some(Box::new(ReplicaCounts {
                desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                created: status.replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                updated: status.updated_replicas.unwrap_or(0),
                observed_generation: status.observed_generation.unwrap_or(0),
            }));
            (key_for(kind.kind, d.meta()), known)
        })
        .await;
    } else {
        let api: Api<ChildMeta> = Api::all_with(client, &kind.resource);
        let stream = watcher::watcher(api, config);
        let name = kind.kind;
        drive(stream, name, index, trigger, move |m: &ChildMeta| {
            (
                key_for(name, &m.metadata.meta),
                known_from_meta(name, &m.metadata.meta, m.metadata.changed_by_others),
            )
        })
        .await;
    }
}

fn key_for(kind: &str, meta: &kube::api::ObjectMeta) -> ChildKey {
    (
        kind.to_string(),
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
    )
}

async fn drive<K, S, F>(
    stream: S,
    kind: &'static str,
    index: ChildIndex,
    trigger: tokio::sync::mpsc::UnboundedSender<String>,
    extract: F,
) where
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
    F: Fn(&K) -> (ChildKey, Known),
{
    let mut stream = std::pin::pin!(stream);
    let mut relist: Vec<(ChildKey, Known)> = Vec::new();
    let mut backoff = std::time::Duration::from_millis(500);
    while let Some(event) = stream.next().await {
        let tenants: Vec<String> = match event {
            Ok(Event::Apply(o)) => {
                let (k, known) = extract(&o);
                index.observe(k, known).into_iter().collect()
            }
            Ok(Event::Delete(o)) => {
                let (k, _) = extract(&o);
                index.remove(&k).into_iter().collect()
            }
            Ok(Event::Init) => {
                relist.clear();
                vec![]
            }
            Ok(Event::InitApply(o)) => {
                relist.push(extract(&o));
                vec![]
            }
            Ok(Event::InitDone) => {
                let entries = std::mem::take(&mut relist);
                // Keep what regie applied itself across a re-list; a child first listed with
                // regie's annotation (after a restart) is regie's at the version listed, unless
                // its managed fields show someone else's change since regie's apply.
                let entries = entries
                    .into_iter()
                    .map(|(k, mut v)| {
                        v.applied_generation = index
                            .get(&k)
                            .and_then(|p| p.applied_generation)
                            .or(v.applied_generation)
                            .or(v.digest.and(v.generation));
                        (k, v)
                    })
                    .collect();
                let touched = index.replace_kind(kind, entries);
                if let Ok(mut listed) = index.listed.lock() {
                    listed.insert(kind.to_string());
                }
                touched
            }
            Err(e) => {
                tracing::warn!(kind, error = %e, "watch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
                vec![]
            }
        };
        if !tenants.is_empty() {
            backoff = std::time::Duration::from_millis(500);
        }
        for t in tenants {
            let _ = trigger.send(t);
        }
    }
}

/// SHA-256 of a JSON body.
pub fn hash(body: &Value) -> AppliedHash {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    Sha256::digest(bytes).into()
}

/// A digest as the annotation carries it: lower-case hex.
pub fn hex(digest: &AppliedHash) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest an annotation value encodes; None for anything else (edited by hand, say), which
/// then simply differs from every desired body.
pub fn parse_hex(text: &str) -> Option<AppliedHash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

/// The API for one child.
pub fn api_for(client: &Client, kind: &ChildKind, namespace: Option<&str>) -> Api<DynamicObject> {
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    }
}

/// A child as it is applied: its body with the `apiVersion` this server offers for its kind,
/// its owner, and the annotation with the digest of the rest.
pub struct Prepared {
    pub child: Child,
    /// None for a kind regie does not create on this server: such a child is not applied.
    digest: Option<AppliedHash>,
}

/// `child` made ready to apply, its body completed in place: a reconcile holds a dozen bodies,
/// and a copy of each per apply was most of what a wave of reconciles allocated for a moment.
pub fn prepare(kinds: &[ChildKind], mut child: Child, owner: Option<Value>) -> Prepared {
    let Some(kind) = kinds.iter().find(|k| k.kind == child.kind) else {
        return Prepared {
            child,
            digest: None,
        };
    };
    let body = &mut child.body;
    body["apiVersion"] = Value::String(kind.resource.api_version.clone());
    if let Some(owner) = owner {
        body["metadata"]["ownerReferences"] = Value::Array(vec![owner]);
    }
    let digest = hash(body);
    body["metadata"]["annotations"][ANNOTATION_HASH] = Value::String(hex(&digest));
    Prepared {
        child,
        digest: Some(digest),
    }
}

/// Applies a prepared child unless the index shows it is already as desired. Returns true on a
/// write.
pub async fn apply(
    client: &Client,
    kinds: &[ChildKind],
    index: &ChildIndex,
    metrics: &Metrics,
    tenant: &str,
    prepared: &Prepared,
) -> Result<bool, kube::Error> {
    let child = &prepared.child;
    let (Some(kind), Some(digest)) = (kinds.iter().find(|k| k.kind == child.kind), prepared.digest)
    else {
        return Ok(false);
    };
    let key = key_of(child);
    if let Some(known) = index.get(&key) {
        let drifted = (known.applied_generation.is_some()
            && known.generation != known.applied_generation)
            || rescaled(&known, &child.body);
        if known.digest == Some(short(&digest)) && !drifted && !known.terminating {
            return Ok(false);
        }
        if known.terminating {
            // A namespace being deleted cannot be applied to; wait for it to go.
            return Ok(false);
        }
    }
    let api = api_for(client, kind, child.namespace.as_deref());
    let result = api
        .patch(
            &child.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&child.body),
        )
        .await?;
    metrics.write("apply", &child.kind);
    index.applied(
        key,
        tenant,
        digest,
        version_of(&child.kind, &result.metadata),
        replicas_of(&result.data),
    );
    Ok(true)
}

/// Whether a Deployment's replicas, as the watch saw them, are not the ones `body` asks for:
/// scaled by someone else. The one change by someone else the index can see after a restart,
/// where it takes the versions it listed as regie's own (see [`version_of`]) — and the one
/// that takes a service down.
fn rescaled(known: &Known, body: &Value) -> bool {
    match (&known.replicas, replicas_of(body)) {
        (Some(counts), Some(wanted)) => counts.desired != wanted,
        _ => false,
    }
}

/// `spec.replicas` of a Deployment's body.
fn replicas_of(body: &Value) -> Option<i32> {
    body.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

/// Deletes a child `tenant` no longer wants, if regie applied it (see [`applied_by_regie`])
/// and it is still `tenant`'s: one read before the delete, which is rare, and the delete only
/// of the version read. Another tenant taking over the namespace this one left may apply the
/// same names there at the same moment; what it applied is its own, and stays. Returns true on
/// a write.
pub async fn delete(
    client: &Client,
    kinds: &[ChildKind],
    index: &ChildIndex,
    metrics: &Metrics,
    key: &ChildKey,
    tenant: &str,
) -> Result<bool, kube::Error> {
    let Some(kind) = kinds.iter().find(|k| k.kind == key.0) else {
        return Ok(false);
    };
    let api = api_for(client, kind, key.1.as_deref());
    // Only what regie applied: its labels are no proof — a manifest copied from one of regie's
    // objects carries them, and anyone may set them by hand.
    let Some(live) = api.get_metadata_opt(&key.2).await? else {
        index.forget(key);
        return Ok(false);
    };
    let labelled = live
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_TENANT));
    if labelled.map(String::as_str) != Some(tenant) {
        tracing::info!(
            %tenant,
            kind = %key.0,
            namespace = key.1.as_deref().unwrap_or(""),
            name = %key.2,
            owner = labelled.map(String::as_str).unwrap_or(""),
            "no longer this tenant's; left in place"
        );
        return Ok(false);
    }
    match delete_read(&api, index, metrics, key, &live.metadata, true).await {
        // Changed since it was read: the watch brings that change, and the next reconcile
        // decides again from it.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        other => other,
    }
}

/// [`delete`] of a child already read (`live`, its metadata with managed fields); with
/// `as_read`, only at the version read (else any version of the object read: same uid).
pub async fn delete_read(
    api: &Api<DynamicObject>,
    index: &ChildIndex,
    metrics: &Metrics,
    key: &ChildKey,
    live: &kube::api::ObjectMeta,
    as_read: bool,
) -> Result<bool, kube::Error> {
    if !applied_by_regie(live) {
        tracing::warn!(
            kind = %key.0,
            namespace = key.1.as_deref().unwrap_or(""),
            name = %key.2,
            "labelled as regie's but never applied by regie; left in place"
        );
        return Ok(false);
    }
    // The object checked, not one made since under its name.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: live.uid.clone(),
            resource_version: if as_read {
                live.resource_version.clone()
            } else {
                None
            },
        }),
        ..DeleteParams::background()
    };
    match api.delete(&key.2, &params).await {
        Ok(_) => {
            metrics.write("delete", &key.0);
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            index.forget(key);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether regie's field manager has applied the object (server-side apply).
pub fn applied_by_regie(meta: &kube::api::ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|f| {
        f.manager.as_deref() == Some(FIELD_MANAGER) && f.operation.as_deref() == Some("Apply")
    })
}

/// An owner reference to a regie object; children are garbage-collected with their owner.
pub fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> Option<Value> {
    let uid = obj.meta().uid.clone()?;
    Some(serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "name": obj.name_any(),
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(kind: &str) -> Child {
        Child {
            api_version: "policy/v1".into(),
            kind: kind.into(),
            namespace: Some("tenant-a".into()),
            name: "web".into(),
            body: serde_json::json!({"kind": kind, "metadata": {"name": "web"}}),
        }
    }

    #[test]
    fn a_prepared_body_carries_version_owner_and_the_digest_of_the_rest() {
        let kinds = child_kinds("v1beta1");
        let owner = serde_json::json!({"kind": "HostingComponent", "name": "web"});
        let prepared = prepare(&kinds, child("PodDisruptionBudget"), Some(owner.clone()));
        let body = &prepared.child.body;
        // The server's version of the kind, not the one the desired state was written for.
        assert_eq!(body["apiVersion"], "policy/v1beta1");
        assert_eq!(
            body["metadata"]["ownerReferences"],
            serde_json::json!([owner])
        );
        // The desired body had no annotations: the digest is of the body without them.
        let mut rest = body.clone();
        let annotations = rest["metadata"]
            .as_object_mut()
            .and_then(|m| m.remove("annotations"))
            .expect("the digest annotation");
        assert_eq!(
            annotations,
            serde_json::json!({ANNOTATION_HASH: hex(&hash(&rest))})
        );
        assert_eq!(prepared.digest, Some(hash(&rest)));
        // A kind regie does not create here is left alone and never applied.
        let odd = prepare(&kinds, child("CronJob"), None);
        assert_eq!(odd.digest, None);
        assert_eq!(odd.child.body, child("CronJob").body);
    }

    #[test]
    fn applied_hashes_round_trip_through_the_annotation() {
        let digest = hash(&serde_json::json!({"kind": "Namespace"}));
        assert_eq!(parse_hex(&hex(&digest)), Some(digest));
        assert_eq!(parse_hex("edited by hand"), None);
        assert_eq!(parse_hex(&"zz".repeat(32)), None);
        assert_eq!(parse_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn only_what_regies_field_manager_applied_is_regies() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let meta = |entries: &[(&str, &str)]| kube::api::ObjectMeta {
            managed_fields: Some(
                entries
                    .iter()
                    .map(|(manager, operation)| ManagedFieldsEntry {
                        manager: Some(manager.to_string()),
                        operation: Some(operation.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(applied_by_regie(&meta(&[
            ("kube-controller-manager", "Update"),
            ("regie", "Apply")
        ])));
        assert!(!applied_by_regie(&meta(&[(
            "kubectl-client-side-apply",
            "Update"
        )])));
        assert!(
            !applied_by_regie(&meta(&[("regie", "Update")])),
            "not applied"
        );
        assert!(!applied_by_regie(&kube::api::ObjectMeta::default()));
    }

    #[test]
    fn versions_are_generations_or_for_kinds_no_controller_writes_resource_versions() {
        let meta = |generation: Option<i64>| kube::api::ObjectMeta {
            generation,
            resource_version: Some("4711".into()),
            ..Default::default()
        };
        assert_eq!(version_of("Deployment", &meta(Some(3))), NonZeroI64::new(3));
        assert_eq!(version_of("Service", &meta(None)), NonZeroI64::new(4711));
        assert_eq!(
            version_of("RoleBinding", &meta(None)),
            NonZeroI64::new(4711)
        );
        // The quota controller moves a quota's resourceVersion: nothing to correct in that.
        assert_eq!(version_of("ResourceQuota", &meta(None)), None);
        let opaque = kube::api::ObjectMeta {
            resource_version: Some("not-a-number".into()),
            ..Default::default()
        };
        assert_eq!(
            version_of("Service", &opaque),
            None,
            "then as before: no drift seen"
        );
    }

    /// A child listed after a restart whose managed fields show someone else's change since
    /// regie's apply (see `views::changed_by_others`) is applied again.
    #[test]
    fn a_child_listed_as_changed_by_others_is_applied_again() {
        let index = ChildIndex::default();
        let key = (
            "NetworkPolicy".to_string(),
            Some("tenant-a".to_string()),
            "isolate".to_string(),
        );
        let mut listed = known_from_meta("NetworkPolicy", &kube::api::ObjectMeta::default(), true);
        listed.tenant = Some(Arc::from("a"));
        listed.digest = NonZeroU64::new(7);
        listed.generation = NonZeroI64::new(3);
        index.observe(key.clone(), listed);
        let known = index.get(&key).expect("indexed");
        assert_eq!(known.applied_generation, Some(CHANGED_BY_OTHERS));
        assert_ne!(known.generation, known.applied_generation);
    }

    /// After a restart nothing is known of regie's own applies: a child first seen with regie's
    /// annotation counts as regie's at the version seen, so the next change by someone else
    /// shows (was: never, until the child's desired body changed).
    #[test]
    fn a_child_first_seen_as_regies_shows_the_next_change_by_someone_else() {
        let index = ChildIndex::default();
        let key = (
            "Service".to_string(),
            Some("tenant-a".to_string()),
            "web".to_string(),
        );
        let seen = |version: i64| Known {
            tenant: Some(Arc::from("a")),
            digest: NonZeroU64::new(7),
            generation: NonZeroI64::new(version),
            ..Known::default()
        };
        assert_eq!(index.observe(key.clone(), seen(10)), Some("a".into()));
        let known = index.get(&key).expect("indexed");
        assert_eq!(known.applied_generation, NonZeroI64::new(10));
        assert_eq!(index.observe(key.clone(), seen(10)), None, "unchanged");
        assert_eq!(
            index.observe(key.clone(), seen(11)),
            Some("a".into()),
            "edited by someone else"
        );
        let known = index.get(&key).expect("indexed");
        assert_ne!(known.generation, known.applied_generation, "applied again");
        // Not regie's (no annotation): nothing to hold it to.
        let foreign = (
            "Service".to_string(),
            Some("tenant-a".to_string()),
            "x".to_string(),
        );
        index.observe(
            foreign.clone(),
            Known {
                digest: None,
                ..seen(5)
            },
        );
        assert_eq!(
            index.get(&foreign).expect("indexed").applied_generation,
            None
        );
    }

    #[test]
    fn children_of_one_tenant_share_its_name() {
        let index = ChildIndex::default();
        let key = |name: &str| {
            (
                "Service".to_string(),
                Some("tenant-a".to_string()),
                name.to_string(),
            )
        };
        index.applied(key("one"), "a", [0; 32], NonZeroI64::new(1), None);
        index.observe(
            key("two"),
            Known {
                tenant: Some(Arc::from("a")),
                ..Known::default()
            },
        );
        {
            let mine = index.of_tenant("a");
            assert_eq!(mine.len(), 2);
            let names: Vec<&Arc<str>> =
                mine.iter().filter_map(|(_, k)| k.tenant.as_ref()).collect();
            assert!(Arc::ptr_eq(names[0], names[1]));
        }
        // The shared name goes with the last child that used it, the group with its last child.
        index.forget(&key("one"));
        assert!(index.lock().strings.contains("a"), "a is still in use");
        assert!(
            !index.lock().strings.contains("one"),
            "one went with its child"
        );
        assert_eq!(index.lock().groups.len(), 1);
        index.remove(&key("two"));
        assert!(
            index.lock().strings.is_empty(),
            "{:?}",
            index.lock().strings
        );
        assert!(index.lock().groups.is_empty());
        assert!(index.of_tenant("a").is_empty());
    }

    #[test]
    fn a_namespace_and_its_children_share_one_group() {
        let index = ChildIndex::default();
        let namespace = ("Namespace".to_string(), None, "tenant-a".to_string());
        let service = (
            "Service".to_string(),
            Some("tenant-a".to_string()),
            "tenant-a".to_string(),
        );
        index.applied(namespace.clone(), "a", [1; 32], None, None);
        index.applied(service.clone(), "a", [2; 32], None, None);
        assert_eq!(index.lock().groups.len(), 1);
        assert_eq!(
            index.get(&namespace).and_then(|k| k.digest),
            Some(short(&[1; 32]))
        );
        assert_eq!(
            index.get(&service).and_then(|k| k.digest),
            Some(short(&[2; 32]))
        );
        let mut mine: Vec<ChildKey> = index.of_tenant("a").into_iter().map(|(k, _)| k).collect();
        mine.sort();
        assert_eq!(mine, vec![namespace, service]);
        // Keys that do not fit their kind are not held (nor confused with the ones above).
        let cluster_scoped_service = ("Service".to_string(), None, "tenant-a".to_string());
        let namespaced_namespace = ("Namespace".to_string(), Some("x".into()), "tenant-a".into());
        for key in [cluster_scoped_service, namespaced_namespace] {
            index.applied(key.clone(), "a", [3; 32], None, None);
            assert!(index.get(&key).is_none());
        }
        assert_eq!(index.of_tenant("a").len(), 2);
    }

    #[test]
    fn children_share_their_names_and_a_namespace_its_group_key() {
        let index = ChildIndex::default();
        for tenant in ["a", "b"] {
            let ns = format!("tenant-{tenant}");
            index.applied(
                ("Namespace".into(), None, ns.clone()),
                tenant,
                [1; 32],
                None,
                None,
            );
            for kind in ["ResourceQuota", "Deployment", "Service"] {
                let name = if kind == "ResourceQuota" {
                    "regie-quota"
                } else {
                    "web"
                };
                index.applied(
                    (kind.into(), Some(ns.clone()), name.into()),
                    tenant,
                    [1; 32],
                    None,
                    None,
                );
            }
        }
        let entries = index.lock();
        // a, b, tenant-a, tenant-b, regie-quota, web: one copy each.
        assert_eq!(entries.strings.len(), 6, "{:?}", entries.strings);
        let (group, children) = entries.groups.get_key_value("tenant-a").expect("a group");
        let namespace = children
            .entries
            .iter()
            .find(|e| e.kind == 0)
            .expect("the namespace");
        assert!(Arc::ptr_eq(group, &namespace.name));
        // The tenant is the group's, kept once for its four children.
        assert!(children.entries.iter().all(|e| e.own_tenant.is_none()));
        assert_eq!(children.tenant.as_deref(), Some("a"));
        drop(entries);
        index.forget(&("Service".into(), Some("tenant-a".into()), "web".into()));
        index.forget(&("Deployment".into(), Some("tenant-a".into()), "web".into()));
        assert!(
            index.lock().strings.contains("web"),
            "tenant-b still uses it"
        );
    }

    #[test]
    fn a_child_labelled_for_another_tenant_or_none_keeps_its_own() {
        let index = ChildIndex::default();
        let key = |name: &str| ("Service".to_string(), Some("tenant-a".into()), name.into());
        index.applied(key("mine"), "a", [0; 32], NonZeroI64::new(1), None);
        index.applied(key("theirs"), "b", [0; 32], NonZeroI64::new(1), None);
        index.observe(key("nobodys"), Known::default());
        let of = |tenant: &str| -> Vec<String> {
            let mut names: Vec<String> = index
                .of_tenant(tenant)
                .into_iter()
                .map(|(k, _)| k.2)
                .collect();
            names.sort();
            names
        };
        assert_eq!(of("a"), ["mine"]);
        assert_eq!(of("b"), ["theirs"]);
        assert_eq!(index.get(&key("nobodys")).map(|k| k.tenant), Some(None));
        assert_eq!(
            index.get(&key("theirs")).and_then(|k| k.tenant).as_deref(),
            Some("b")
        );
        // Relabelled for the group's tenant: no longer its own.
        index.applied(key("theirs"), "a", [0; 32], NonZeroI64::new(1), None);
        assert_eq!(of("a"), ["mine", "theirs"]);
        assert!(
            !index.lock().strings.contains("b"),
            "b went with its last child"
        );
        assert_eq!(index.remove(&key("nobodys")), None);
        index.remove(&key("mine"));
        index.remove(&key("theirs"));
        assert!(
            index.lock().strings.is_empty(),
            "{:?}",
            index.lock().strings
        );
    }

    #[test]
    fn an_entry_stays_small() {
        // A dozen per tenant: the index is a large part of the operator's memory per tenant.
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn the_index_holds_every_kind_regie_creates() {
        let index = ChildIndex::default();
        for version in ["v1", "v1beta1"] {
            for kind in child_kinds(version) {
                let namespace = kind.namespaced.then(|| "tenant-a".to_string());
                let key = (kind.kind.to_string(), namespace, "x".into());
                index.applied(key.clone(), "a", [1; 32], NonZeroI64::new(1), None);
                assert_eq!(
                    index.get(&key).and_then(|k| k.digest),
                    Some(short(&[1; 32])),
                    "{}",
                    kind.kind
                );
            }
        }
        assert_eq!(index.counts().len(), KINDS.len());
    }

    #[test]
    fn a_relist_replaces_one_kind_and_keeps_the_others() {
        let index = ChildIndex::default();
        let key = |kind: &str, name: &str| (kind.to_string(), Some("tenant-a".into()), name.into());
        index.applied(
            key("Service", "old"),
            "a",
            [1; 32],
            NonZeroI64::new(1),
            None,
        );
        index.applied(
            key("Deployment", "web"),
            "a",
            [2; 32],
            NonZeroI64::new(1),
            None,
        );
        let touched = index.replace_kind(
            "Service",
            vec![(
                key("Service", "new"),
                Known {
                    tenant: Some(Arc::from("b")),
                    ..Known::default()
                },
            )],
        );
        assert_eq!(touched, vec!["a".to_string(), "b".to_string()]);
        assert!(index.get(&key("Service", "old")).is_none());
        assert!(index.get(&key("Service", "new")).is_some());
        assert!(index.get(&key("Deployment", "web")).is_some());
        assert_eq!(index.of_tenant("b").len(), 1);
    }

    #[test]
    fn a_deployment_scaled_by_someone_else_is_seen_and_regies_own_scaling_is_not() {
        let index = ChildIndex::default();
        let key: ChildKey = ("Deployment".into(), Some("tenant-a".into()), "web".into());
        let body = |replicas: i64| serde_json::json!({"spec": {"replicas": replicas}});
        let counts = |desired: i32| {
            Some(Box::new(ReplicaCounts {
                desired,
                ..ReplicaCounts::default()
            }))
        };
        // Listed after a restart, scaled to nothing while no regie ran.
        let listed = Known {
            tenant: Some(Arc::from("a")),
            generation: NonZeroI64::new(4),
            applied_generation: NonZeroI64::new(4),
            replicas: counts(0),
            ..Known::default()
        };
        assert!(rescaled(&listed, &body(2)));
        assert!(!rescaled(&listed, &body(0)));
        // No counts (not a Deployment) or no replicas asked: nothing to compare.
        assert!(!rescaled(&Known::default(), &body(2)));
        assert!(!rescaled(&listed, &serde_json::json!({"spec": {}})));
        // regie's own apply records what it asked for before the watch echoes it.
        index.observe(key.clone(), listed);
        index.applied(
            key.clone(),
            "a",
            [1; 32],
            NonZeroI64::new(5),
            replicas_of(&body(3)),
        );
        let known = index.get(&key).expect("known");
        assert!(!rescaled(&known, &body(3)));
        assert_eq!(known.replicas.map(|c| c.desired), Some(3));
    }
}
