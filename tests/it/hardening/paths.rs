//! Path disguises aimed at secrets, exec and RBAC, sent as raw bytes (a client library would
//! normalise them) to a sluice that allows reads only. Each is either seen through (and
//! denied at its real tier) or refused as ambiguous; none reaches the upstream.

use super::T0_ONLY;
use crate::support::ApiServer;
use crate::support::raw::{self, assert_still_serving, exchange, status};
use crate::support::sluice::{Options, Sluice};

/// (method, request target, the status sluice answers)
const DISGUISES: &[(&str, &str, u16)] = &[
    // secrets
    ("GET", "/api/v1/namespaces/default/secrets", 403),
    ("GET", "/api/v1/namespaces/default/secrets/", 403),
    ("GET", "/api/v1/namespaces/default/%73ecrets", 403),
    (
        "GET",
        "/api/v1/namespaces/default/%73%65%63%72%65%74%73/db",
        403,
    ),
    ("HEAD", "/api/v1/namespaces/default/secrets/db", 403),
    ("GET", "/api/v1/watch/namespaces/default/secrets", 403),
    ("GET", "/api/v1/secrets?watch=1", 403),
    ("GET", "/api/v1/namespaces/default/pods/../secrets", 400),
    ("GET", "/api/v1/namespaces/default/pods/%2e%2e/secrets", 400),
    ("GET", "/api/v1/namespaces/default/./secrets", 400),
    ("GET", "/api/v1/namespaces/default//secrets", 400),
    ("GET", "//api/v1/namespaces/default/secrets", 400),
    ("GET", "/api/v1/namespaces/default%2Fsecrets", 400),
    ("GET", "/api/v1/namespaces/default%2fsecrets/db", 400),
    ("GET", "/api/v1/namespaces/default/Secrets", 400),
    ("GET", "/API/v1/namespaces/default/secrets", 400),
    ("GET", "/api/V1/namespaces/default/secrets", 400),
    (
        "GET",
        "/api/v1/namespaces/default/pods%C0%AF..%C0%AFsecrets",
        400,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods/x%C0%AE%C0%AE/secrets",
        400,
    ),
    ("GET", "/api/v1/namespaces/default/secrets%00", 400),
    ("GET", "/api/v1/namespaces/default/secrets%00/db", 400),
    ("GET", "/api/v1/namespaces/default/%2573ecrets", 400),
    (
        "GET",
        "/api/v1/namespaces/default/secrets?watch=0&watch=1",
        400,
    ),
    (
        "GET",
        "https://evil.example/api/v1/namespaces/default/secrets",
        403,
    ),
    // exec and friends
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-0/exec?command=sh",
        403,
    ),
    (
        "POST",
        "/api/v1/namespaces/default/pods/web-0/exec?command=sh",
        403,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-0/%65xec?command=sh",
        403,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-0/exec/?command=sh",
        403,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-0/EXEC?command=sh",
        400,
    ),
    ("GET", "/api/v1/namespaces/default/pods/web-0/./exec", 400),
    ("GET", "/api/v1/namespaces/default/pods/web-0//exec", 400),
    ("GET", "/api/v1/namespaces/default/pods/web-0%2Fexec", 400),
    ("GET", "/api/v1/namespaces/default/pods/web-0/exec%00", 400),
    ("GET", "/api/v1/namespaces/default/pods/web-0/attach", 403),
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-0/portforward?ports=80",
        403,
    ),
    (
        "GET",
        "/api/v1/namespaces/default/pods/web-0/proxy/admin",
        403,
    ),
    (
        "GET",
        "/api/v1/proxy/namespaces/default/pods/web-0/admin",
        403,
    ),
    ("GET", "/api/v1/namespaces/default/services/web/proxy/", 403),
    // RBAC
    (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        403,
    ),
    (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/",
        403,
    ),
    (
        "PUT",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/%61dmin",
        403,
    ),
    (
        "DELETE",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/r",
        403,
    ),
    (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?dryRun=All&dryRun=All",
        400,
    ),
    (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default%2Froles",
        400,
    ),
    (
        "POST",
        "/apis/RBAC.authorization.k8s.io/v1/clusterrolebindings",
        400,
    ),
    (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/x/../clusterrolebindings",
        400,
    ),
];

#[tokio::test]
async fn path_disguises_never_reach_the_upstream() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(&api, Options::with_policy(T0_ONLY)).await;
    let mut wrong = Vec::new();
    for (method, target, want) in DISGUISES {
        let text = exchange(
            &sluice,
            &raw::request(method, target, &["Content-Length: 0"]),
        )
        .await;
        if status(&text) != *want {
            wrong.push(format!(
                "{method} {target}: {} (want {want})",
                status(&text)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), sluice.log());
    assert!(
        api.requests().is_empty(),
        "a disguise reached the upstream: {:?}",
        api.requests()
            .iter()
            .map(|r| &r.path_and_query)
            .collect::<Vec<_>>()
    );
    // What was seen through was recorded at its real tier.
    let event = sluice
        .wait_for_event("the %73ecrets decision", |e| {
            e["stage"] == "decision" && e["path"] == "/api/v1/namespaces/default/%73ecrets"
        })
        .await;
    assert_eq!(event["resource"], "secrets");
    assert_eq!(event["tier"], 3);
    assert_eq!(event["decision"], "deny");
    assert_still_serving(&sluice).await;
    assert_eq!(api.requests().len(), 1, "only the final read went upstream");
}

#[tokio::test]
async fn raw_control_bytes_in_the_request_line_are_refused_by_the_parser() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(&api, Options::with_policy(T0_ONLY)).await;
    for target in [
        &b"/api/v1/namespaces/default/secrets\0"[..],
        b"/api/v1/namespaces/default/pods\x00/../secrets",
        b"/api/v1/namespaces/default/pods\t/../secrets",
        b"/api/v1/namespaces/default/pods\xc0\xaf../secrets",
    ] {
        let mut bytes = b"GET ".to_vec();
        bytes.extend_from_slice(target);
        bytes.extend_from_slice(&raw::request("", "", &[])[1..]);
        let text = exchange(&sluice, &bytes).await;
        let code = status(&text);
        assert!(
            code == 400 || code == 0,
            "{}: {text}",
            String::from_utf8_lossy(target)
        );
    }
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_still_serving(&sluice).await;
}
