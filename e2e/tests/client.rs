//! regie's API client (`regie::api_client`, what `regie run` and `Cluster::client` use) against
//! the real kube-apiserver: it speaks HTTP/2, so that every request and watch shares one
//! connection, and on that one connection a watch nobody reads holds up no other request.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchParams};
use regie_e2e::cluster::shared;

#[tokio::test]
async fn speaks_http2_to_the_api_server() {
    let client = shared().client().await.expect("client");
    let request = http::Request::get("/version")
        .body(kube::client::Body::from(Vec::new()))
        .expect("request");
    let response = client.send(request).await.expect("GET /version");
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.version(), http::Version::HTTP_2);
}

/// The controller stops reading its watch while all its reconcile slots are taken, and each of
/// those reconciles waits for responses on the same connection. What the unread watch has
/// received counts against the connection's flow-control window too; were that window no
/// larger than the stream's, the watch would fill it and every response would wait for a
/// reader that waits for them.
#[tokio::test]
async fn a_watch_nobody_reads_holds_up_no_other_request() {
    let cluster = shared();
    let client = cluster.client().await.expect("client");
    let ns = "e2e-unread-watch";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
                .expect("namespace"),
        )
        .await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let unread = maps
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch started");
    // 200 events of over 4 KiB each: about 13 times HTTP/2's initial 64 KiB window.
    let filler = "x".repeat(4096);
    for i in 0..200 {
        let map: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("m-{i}"), "labels": {"filler": "yes"}},
            "data": {"filler": filler},
        }))
        .expect("config map");
        tokio::time::timeout(
            Duration::from_secs(20),
            maps.create(&PostParams::default(), &map),
        )
        .await
        .unwrap_or_else(|_| panic!("create {i} held up behind the unread watch"))
        .expect("created");
    }
    let listed = tokio::time::timeout(
        Duration::from_secs(20),
        maps.list(&ListParams::default().labels("filler=yes")),
    )
    .await
    .expect("list held up behind the unread watch")
    .expect("listed");
    assert_eq!(listed.items.len(), 200);
    drop(unread);
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
}
