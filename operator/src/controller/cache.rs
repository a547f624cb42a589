//! A read-only cache of one kind that keeps of each object only what its reader needs, under
//! one string key.
//!
//! kube-runtime's reflector stores every object whole, keyed by a reference that holds its own
//! copies of name, namespace, uid and resourceVersion. For the Tenants, their components and
//! packages, and the kinds invoicing reads — a Usage, an SlaReport and an Invoice per tenant
//! and month, thousands of each — that is most of what they cost: a label map alone keeps a
//! B-tree node of over half a KiB. Here each kind says what it keeps ([`Filler::handle`]'s
//! `slim`), and the key is one string, `namespace/name`, in order, so that a namespace's
//! objects (a tenant's components) are found without a walk over all of them. A kept value
//! that needs its name shares the key's copy ([`Filler::handle`]).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use futures::{Stream, StreamExt};
use kube::api::{Api, ObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

/// What one kind's watch has delivered, slimmed; shared by its filler and its readers.
pub struct Cache<V> {
    live: RwLock<BTreeMap<Arc<str>, Arc<V>>>,
    /// Whether the first list is complete; any number of tasks may wait for it.
    listed: tokio::sync::watch::Sender<bool>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache {
            live: RwLock::new(BTreeMap::new()),
            listed: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl<V> Cache<V> {
    /// Every object held, by namespace and name.
    pub fn state(&self) -> Vec<Arc<V>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.values().cloned().collect()
    }

    /// The objects of namespace `ns`, by name.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<V>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        // Keys of `ns` lie between "ns/" and "ns0" ('0' follows '/').
        let (from, to) = (format!("{ns}/"), format!("{ns}0"));
        live.range::<str, _>((
            std::ops::Bound::Included(from.as_str()),
            std::ops::Bound::Excluded(to.as_str()),
        ))
        .map(|(_, v)| v.clone())
        .collect()
    }

    /// The keys of the objects held that `pick` picks.
    pub fn keys_where(&self, pick: impl Fn(&V) -> bool) -> Vec<Arc<str>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.iter()
            .filter(|(_, v)| pick(v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The namespaces the objects held live in.
    pub fn namespaces(&self) -> std::collections::BTreeSet<String> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.keys()
            .filter_map(|k| k.split_once('/').map(|(ns, _)| ns.to_string()))
            .collect()
    }

    /// The object `name` of namespace `ns`.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<V>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.get(format!("{ns}/{name}").as_str()).cloned()
    }

    /// The cluster-scoped object `name`.
    pub fn named(&self, name: &str) -> Option<Arc<V>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.get(name).cloned()
    }

    /// Whether the first full list is complete (it stays so through later relists).
    pub fn is_listed(&self) -> bool {
        *self.listed.borrow()
    }

    /// Whether the cache, fully listed, holds nothing under `key` (`namespace/name`, or the name
    /// of a cluster-scoped object). False until the first list is complete.
    pub fn lacks(&self, key: &str) -> bool {
        self.is_listed()
            && !self
                .live
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(key)
    }

    /// Resolves once the cache holds its first full list.
    pub async fn wait_listed(&self) {
        let _ = self.listed.subscribe().wait_for(|l| *l).await;
    }
}

/// The events of a watch over every object of kind `K`. It backs off, so a watch that keeps
/// failing (RBAC, a missing CRD) does not spin; its errors are logged and the watcher retries.
pub fn watch_all<K>(client: kube::Client) -> impl Stream<Item = Event<K>> + Send
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher::watcher(Api::<K>::all(client), watcher::Config::default())
        .default_backoff()
        .filter_map(|ev| async move {
            ev.map_err(|e| match e {
                // Cannot list or start watching (RBAC, a missing CRD): the caches never fill
                // and nothing is reconciled, so it must be seen. The backoff spaces these out.
                watcher::Error::InitialListFailed(_) | watcher::Error::WatchStartFailed(_) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
                // A watch that ends or expires mid-stream is routine: the watcher lists again.
                _ => tracing::debug!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
            })
            .ok()
        })
}

/// The key of an object: `namespace/name`, or its name when it has no namespace.
pub fn key_of(meta: &ObjectMeta) -> Arc<str> {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}").into(),
        None => name.into(),
    }
}

/// Keeps one [`Cache`] in step with a watch. A relist is gathered apart and replaces the cache
/// at its end, so readers never see a half-listed kind.
pub struct Filler<V> {
    cache: Arc<Cache<V>>,
    relisting: Option<BTreeMap<Arc<str>, Arc<V>>>,
    /// Whether two kept values are the same to readers (an update that is wakes no one);
    /// [`differ`] when they cannot tell.
    same: fn(&V, &V) -> bool,
}

/// For kinds whose every update counts as a change.
pub fn differ<V>(_: &V, _: &V) -> bool {
    false
}

impl<V> Filler<V> {
    pub fn new(cache: Arc<Cache<V>>, same: fn(&V, &V) -> bool) -> Self {
        Filler {
            cache,
            relisting: None,
            same,
        }
    }

    /// Applies one watch event; `slim` turns an object into what the cache keeps, and gets its
    /// key (`namespace/name`, see [`key_of`]) for a value that keeps its name to share instead
    /// of a copy of its own. True when readers see something new: an object that is not the
    /// same as before, or the end of a relist.
    pub fn handle<K: kube::Resource>(
        &mut self,
        event: Event<K>,
        slim: impl Fn(K, &Arc<str>) -> V,
    ) -> bool {
        match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                false
            }
            Event::InitApply(o) => {
                let key = key_of(o.meta());
                let value = Arc::new(slim(o, &key));
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, value);
                false
            }
            Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                *self
                    .cache
                    .live
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = listed;
                self.cache.listed.send_replace(true);
                true
            }
            Event::Apply(o) => {
                let key = key_of(o.meta());
                // An object already held keeps its key, and the new value shares that copy.
                // Only this filler writes the cache, so the key read here is still there below.
                let key = self
                    .cache
                    .live
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_key_value(&key)
                    .map_or(key, |(k, _)| k.clone());
                let value = slim(o, &key);
                let mut live = self
                    .cache
                    .live
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                match live.get_mut(&key) {
                    Some(old) => {
                        // Kept even when the same to readers: what they do not read (a
                        // report's end while it is open, say) may have changed.
                        let news = !(self.same)(old, &value);
                        *old = Arc::new(value);
                        news
                    }
                    None => {
                        live.insert(key, Arc::new(value));
                        true
                    }
                }
            }
            Event::Delete(o) => {
                let key = key_of(o.meta());
                let mut live = self
                    .cache
                    .live
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                live.remove(&*key).is_some()
            }
        }
    }
}

/// A digest of a value's JSON form: to tell whether two values are the same without keeping
/// one of them.
pub fn digest(value: &impl serde::Serialize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(value).unwrap_or_default().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::collections::BTreeMap;

    fn map(ns: Option<&str>, name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: ns.map(Into::into),
                resource_version: Some(format!("rv-{value}")),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("v".to_string(), value.to_string())])),
            ..ConfigMap::default()
        }
    }

    /// Keeps the value only: a new resourceVersion alone is no change.
    fn value(c: ConfigMap, _key: &Arc<str>) -> String {
        c.data.unwrap_or_default().remove("v").unwrap_or_default()
    }

    fn sorted(cache: &Cache<String>) -> Vec<String> {
        let mut all: Vec<String> = cache.state().iter().map(|v| (**v).clone()).collect();
        all.sort();
        all
    }

    #[test]
    fn absence_is_known_only_once_the_first_list_is_complete() {
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), String::eq);
        filler.handle(Event::<ConfigMap>::Init, value);
        filler.handle(Event::InitApply(map(None, "tholen-2026-12", "1")), value);
        assert!(!cache.lacks("etten-leur-2026-12"), "not listed yet");
        filler.handle(Event::<ConfigMap>::InitDone, value);
        assert!(cache.lacks("etten-leur-2026-12"));
        assert!(!cache.lacks("tholen-2026-12"));
        filler.handle(Event::Apply(map(Some("ns"), "a", "2")), value);
        assert!(!cache.lacks("ns/a") && cache.lacks("a"));
    }

    #[test]
    fn an_update_the_same_to_readers_is_kept_without_news() {
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), |a: &String, b: &String| {
            a.eq_ignore_ascii_case(b)
        });
        assert!(filler.handle(Event::Apply(map(None, "a", "x")), value));
        assert!(!filler.handle(Event::Apply(map(None, "a", "X")), value));
        assert_eq!(sorted(&cache), ["X"], "kept all the same");
        assert_eq!(cache.keys_where(|v| v == "X"), [Arc::<str>::from("a")]);
        assert!(filler.handle(Event::Apply(map(None, "a", "y")), value));
    }

    #[test]
    fn a_relist_is_seen_only_whole_and_replaces_what_was_there() {
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), String::eq);
        assert!(filler.handle(Event::Apply(map(None, "old", "0")), value));
        assert!(!filler.handle(Event::<ConfigMap>::Init, value));
        assert!(!filler.handle(Event::InitApply(map(None, "a", "1")), value));
        assert!(!filler.handle(Event::InitApply(map(Some("ns"), "a", "2")), value));
        // Mid-relist, readers still see the old world.
        assert_eq!(sorted(&cache), ["0"]);
        assert!(filler.handle(Event::<ConfigMap>::InitDone, value));
        assert_eq!(sorted(&cache), ["1", "2"]);
    }

    #[test]
    fn only_a_change_of_what_is_kept_counts_as_a_change() {
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), String::eq);
        assert!(filler.handle(Event::Apply(map(Some("ns"), "a", "1")), value));
        let mut same = map(Some("ns"), "a", "1");
        same.metadata.resource_version = Some("rv-later".into());
        assert!(!filler.handle(Event::Apply(same), value));
        assert!(filler.handle(Event::Apply(map(Some("ns"), "a", "2")), value));
        // The same name in another namespace is another object.
        assert!(filler.handle(Event::Apply(map(Some("other"), "a", "3")), value));
        assert_eq!(sorted(&cache), ["2", "3"]);
        assert!(filler.handle(Event::Delete(map(Some("ns"), "a", "2")), value));
        assert!(!filler.handle(Event::Delete(map(Some("ns"), "a", "2")), value));
        assert_eq!(sorted(&cache), ["3"]);
        assert_eq!(cache.state().len(), 1);
    }

    #[test]
    fn a_kind_that_cannot_compare_counts_every_update() {
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), differ);
        assert!(filler.handle(Event::Apply(map(None, "a", "1")), value));
        assert!(filler.handle(Event::Apply(map(None, "a", "1")), value));
        assert_eq!(sorted(&cache), ["1"]);
    }

    #[test]
    fn a_namespace_holds_only_its_own_objects() {
        let cache = Arc::new(Cache::default());
        let mut filler = Filler::new(cache.clone(), String::eq);
        for (ns, name, v) in [
            ("t", "b", "1"),
            ("t", "a", "2"),
            ("t-2", "a", "3"),
            ("t.x", "a", "4"),
            ("s", "z", "5"),
        ] {
            filler.handle(Event::Apply(map(Some(ns), name, v)), value);
        }
        filler.handle(Event::Apply(map(None, "t", "6")), value);
        let of = |ns: &str| -> Vec<String> {
            cache
                .in_namespace(ns)
                .iter()
                .map(|v| (**v).clone())
                .collect()
        };
        assert_eq!(of("t"), ["2", "1"], "by name");
        assert_eq!(of("t-2"), ["3"]);
        assert!(of("u").is_empty());
        assert_eq!(
            cache.get("t", "b").as_deref().map(String::as_str),
            Some("1")
        );
        assert!(cache.get("t", "c").is_none());
    }

    #[tokio::test]
    async fn waiting_for_the_first_list_ends_with_it() {
        let cache = Arc::new(Cache::<String>::default());
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_listed().await }
        });
        let mut filler = Filler::new(cache.clone(), String::eq);
        filler.handle(Event::<ConfigMap>::Init, value);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        filler.handle(Event::<ConfigMap>::InitDone, value);
        waiting.await.unwrap();
        cache.wait_listed().await;
    }

    #[test]
    fn keys_name_the_namespace_when_there_is_one() {
        let m = map(Some("ns"), "a", "1").metadata;
        assert_eq!(&*key_of(&m), "ns/a");
        assert_eq!(&*key_of(&map(None, "a", "1").metadata), "a");
    }
}
