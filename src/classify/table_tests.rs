//! One row per request: every row of the tier table, every verb, core and named groups,
//! cluster-scoped and namespaced, subresources, dry-run, runbooks and disguises.

use http::{Method, Uri};

use super::*;

/// Protected: `kube-system`, `infra-*`. Runbook `scale-web`, for `bot`: patch or update
/// `deployments/scale` in `dev-*`; create `configmaps` in the core group.
fn classifier() -> Classifier {
    let globs = |patterns: &[&str]| -> Vec<Glob> {
        patterns.iter().map(|p| Glob::new(p).unwrap()).collect()
    };
    let operations = vec![
        Operation::new(
            vec![Verb::Patch, Verb::Update],
            vec![("deployments".into(), Some("scale".into()))],
            None,
            Some(globs(&["dev-*"])),
        ),
        Operation::new(
            vec![Verb::Create],
            vec![("configmaps".into(), None)],
            Some(vec!["".into()]),
            None,
        ),
    ];
    let runbooks = vec![Runbook::new("scale-web", ["bot"], operations)];
    Classifier::new(globs(&["kube-system", "infra-*"]), runbooks)
}

/// (method, uri, tier, the reason, or a fragment of it); the agent is `bot`.
#[rustfmt::skip]
const ROWS: &[(&str, &str, u8, &str)] = &[
    // T0: reads of anything but secrets
    ("GET", "/api/v1/namespaces/d/pods", 0, "list of pods"),
    ("GET", "/api/v1/namespaces/d/pods/p", 0, "read of pods"),
    ("HEAD", "/api/v1/namespaces/d/pods/p", 0, "read of pods"),
    ("GET", "/api/v1/pods", 0, "list of pods"),
    ("GET", "/api/v1/pods?watch=true", 0, "watch of pods"),
    ("GET", "/api/v1/pods?watch=1", 0, "watch of pods"),
    ("GET", "/api/v1/pods?watch=0", 0, "list of pods"),
    ("GET", "/api/v1/pods?watch=false", 0, "list of pods"),
    ("GET", "/api/v1/watch/pods", 0, "watch of pods"),
    ("GET", "/api/v1/watch/namespaces/d/pods", 0, "watch of pods"),
    ("GET", "/api/v1/watch/namespaces/d/pods/p", 0, "watch of pods"),
    ("GET", "/api/v1/namespaces/d/pods/p/log", 0, "read of pod logs"),
    ("GET", "/api/v1/namespaces/d/pods/p/log?follow=true", 0, "read of pod logs"),
    ("GET", "/api/v1/namespaces/d/pods/p/status", 0, "read of pods/status"),
    ("GET", "/api/v1/namespaces", 0, "list of namespaces"),
    ("GET", "/api/v1/namespaces/kube-system", 0, "read of namespaces"),
    ("GET", "/api/v1/namespaces/kube-system/pods", 0, "list of pods"),
    ("GET", "/api/v1/namespaces/kube-system/configmaps/c", 0, "read of configmaps"),
    ("GET", "/api/v1/nodes", 0, "list of nodes"),
    ("GET", "/api/v1/nodes/n", 0, "read of nodes"),
    ("GET", "/api/v1/persistentvolumes", 0, "list of persistentvolumes"),
    ("GET", "/api/v1/namespaces/d/configmaps", 0, "list of configmaps"),
    ("GET", "/api/v1/namespaces/d/serviceaccounts/s", 0, "read of serviceaccounts"),
    ("GET", "/api/v1/namespaces/d/events?watch=true", 0, "watch of events"),
    ("GET", "/apis/apps/v1/deployments", 0, "list of deployments"),
    ("GET", "/apis/apps/v1/namespaces/d/deployments/w", 0, "read of deployments"),
    ("GET", "/apis/apps/v1/namespaces/d/deployments/w/scale", 0, "read of deployments/scale"),
    ("GET", "/apis/apps/v1/watch/namespaces/d/replicasets", 0, "watch of replicasets"),
    ("GET", "/apis/batch/v1/namespaces/d/jobs", 0, "list of jobs"),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", 0, "list of clusterroles"),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/d/roles/r", 0, "read of roles"),
    ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", 0, "list of customresourcedefinitions"),
    ("GET", "/apis/example.com/v1alpha1/namespaces/d/widgets", 0, "list of widgets"),
    ("GET", "/apis/metrics.k8s.io/v1beta1/nodes", 0, "list of nodes"),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l", 0, "read of leases"),
    // T0: non-resource reads and discovery
    ("GET", "/", 0, "read of /"),
    ("GET", "/api", 0, "read of /api"),
    ("GET", "/api/v1", 0, "read of /api/v1"),
    ("GET", "/apis", 0, "read of /apis"),
    ("GET", "/apis/apps", 0, "read of /apis/apps"),
    ("GET", "/apis/apps/v1", 0, "read of /apis/apps/v1"),
    ("GET", "/version", 0, "read of /version"),
    ("GET", "/version/", 0, "read of /version"),
    ("GET", "/openapi/v2", 0, "read of /openapi/v2"),
    ("GET", "/openapi/v3/apis/apps/v1?hash=abc", 0, "read of /openapi/v3/apis/apps/v1"),
    ("GET", "/healthz", 0, "read of /healthz"),
    ("GET", "/livez/etcd", 0, "read of /livez/etcd"),
    ("HEAD", "/readyz", 0, "read of /readyz"),
    ("GET", "/.well-known/openid-configuration", 0, "read of /.well-known"),
    ("GET", "/metrics", 0, "read of /metrics"),
    // T0: self reviews (exact group)
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", 0, "create of selfsubjectaccessreviews"),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", 0, "create of selfsubjectrulesreviews"),
    ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", 0, "create of selfsubjectreviews"),
    ("POST", "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews", 0, "selfsubjectreviews"),
    ("POST", "/apis/example.com/v1/selfsubjectaccessreviews", 4, "cluster-scoped"),
    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", 4, "create of subjectaccessreviews"),
    ("POST", "/apis/authorization.k8s.io/v1/namespaces/d/localsubjectaccessreviews", 2, "create of localsubjectaccessreviews"),
    ("PUT", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/x", 4, "update of selfsubjectaccessreviews"),
    // T0: dry-run writes
    ("POST", "/api/v1/namespaces/d/pods?dryRun=All", 0, "dry-run create of pods"),
    ("PATCH", "/apis/apps/v1/namespaces/d/deployments/w?dryRun=All", 0, "dry-run patch of deployments"),
    ("PUT", "/apis/apps/v1/namespaces/d/deployments/w?dryRun=All&fieldManager=kubectl", 0, "dry-run update"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?dryRun=All", 0, "dry-run create of clusterrolebindings"),
    ("PATCH", "/api/v1/namespaces/kube-system/configmaps/c?dryRun=All", 0, "dry-run patch of configmaps"),
    ("POST", "/api/v1/namespaces/d/pods/p/eviction?dryRun=All", 0, "dry-run create of pods/eviction"),
    ("PATCH", "/api/v1/nodes/n?dryRun=All", 0, "dry-run patch of nodes"),
    // dry-run that does not count
    ("POST", "/api/v1/namespaces/d/pods?dryRun=all", 2, "create of pods"),
    ("POST", "/api/v1/namespaces/d/pods?dryRun=", 2, "create of pods"),
    ("POST", "/api/v1/namespaces/d/pods?dryrun=All", 2, "create of pods"),
    ("DELETE", "/api/v1/namespaces/d/pods/p?dryRun=All", 3, "delete of pods"),
    ("DELETE", "/api/v1/namespaces/d/pods?dryRun=All", 3, "deletecollection of pods"),
    // dry-run keeps the tier of secrets and break-glass subresources
    ("POST", "/api/v1/namespaces/d/secrets?dryRun=All", 3, "create of secrets"),
    ("PATCH", "/api/v1/namespaces/d/secrets/s?dryRun=All", 3, "patch of secrets"),
    ("PATCH", "/api/v1/namespaces/kube-system/secrets/s?dryRun=All", 4, "write in protected namespace kube-system"),
    ("POST", "/api/v1/namespaces/d/pods/p/exec?dryRun=All", 4, "exec into a pod"),
    ("POST", "/api/v1/namespaces/d/serviceaccounts/s/token?dryRun=All", 4, "token for a service account"),
    ("PATCH", "/api/v1/namespaces/d/pods/p/ephemeralcontainers?dryRun=All", 4, "ephemeral container in a pod"),
    // T1: runbooks lower T2 only
    ("PATCH", "/apis/apps/v1/namespaces/dev-a/deployments/w/scale", 1, "patch of deployments/scale (runbook scale-web)"),
    ("PUT", "/apis/apps/v1/namespaces/dev-b/deployments/w/scale", 1, "update of deployments/scale (runbook scale-web)"),
    ("POST", "/api/v1/namespaces/prod/configmaps", 1, "create of configmaps (runbook scale-web)"),
    ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/w/scale", 2, "patch of deployments/scale"),
    ("PATCH", "/apis/apps/v1/namespaces/dev-a/deployments/w", 2, "patch of deployments"),
    ("POST", "/apis/apps/v1/namespaces/dev-a/deployments/w/scale", 2, "create of deployments/scale"),
    ("POST", "/apis/example.com/v1/namespaces/prod/configmaps", 2, "create of configmaps"),
    ("DELETE", "/api/v1/namespaces/prod/configmaps/c", 3, "delete of configmaps"),
    ("PATCH", "/apis/apps/v1/namespaces/infra-1/deployments/w/scale", 4, "write in protected namespace infra-1"),
    // T2: ordinary namespaced writes, status and scale
    ("POST", "/api/v1/namespaces/d/pods", 2, "create of pods"),
    ("PUT", "/api/v1/namespaces/d/pods/p", 2, "update of pods"),
    ("PATCH", "/api/v1/namespaces/d/pods/p", 2, "patch of pods"),
    ("PUT", "/api/v1/namespaces/d/pods/p/status", 2, "update of pods/status"),
    ("PATCH", "/api/v1/namespaces/d/pods/p/resize", 2, "patch of pods/resize"),
    ("POST", "/api/v1/namespaces/d/limitranges", 2, "create of limitranges"),
    ("PATCH", "/api/v1/namespaces/d/services/s", 2, "patch of services"),
    ("PUT", "/api/v1/namespaces/d/serviceaccounts/s", 2, "update of serviceaccounts"),
    ("PATCH", "/api/v1/namespaces/d/persistentvolumeclaims/c", 2, "patch of persistentvolumeclaims"),
    ("PUT", "/api/v1/namespaces/d/replicationcontrollers/r/scale", 2, "update of replicationcontrollers/scale"),
    ("POST", "/apis/apps/v1/namespaces/d/deployments", 2, "create of deployments"),
    ("PATCH", "/apis/apps/v1/namespaces/d/deployments/w", 2, "patch of deployments"),
    ("PATCH", "/apis/apps/v1/namespaces/d/deployments/w/status", 2, "patch of deployments/status"),
    ("PATCH", "/apis/apps/v1/namespaces/d/statefulsets/s/scale", 2, "patch of statefulsets/scale"),
    ("POST", "/apis/batch/v1/namespaces/d/jobs", 2, "create of jobs"),
    ("PATCH", "/apis/batch/v1/namespaces/d/cronjobs/c", 2, "patch of cronjobs"),
    ("POST", "/apis/networking.k8s.io/v1/namespaces/d/ingresses", 2, "create of ingresses"),
    ("POST", "/apis/example.com/v1/namespaces/d/widgets", 2, "create of widgets"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/d/leases/l", 2, "update of leases"),
    ("POST", "/api/v1/namespaces/d/events", 2, "create of events"),
    // T3: deletes, secrets, eviction, unusual subresources
    ("DELETE", "/api/v1/namespaces/d/pods/p", 3, "delete of pods"),
    ("DELETE", "/api/v1/namespaces/d/pods", 3, "deletecollection of pods"),
    ("DELETE", "/apis/apps/v1/namespaces/d/deployments/w", 3, "delete of deployments"),
    ("DELETE", "/apis/apps/v1/namespaces/d/deployments", 3, "deletecollection of deployments"),
    ("DELETE", "/apis/example.com/v1/namespaces/d/widgets/x", 3, "delete of widgets"),
    ("DELETE", "/api/v1/namespaces/d/configmaps/c", 3, "delete of configmaps"),
    ("GET", "/api/v1/namespaces/d/secrets/s", 3, "read of secrets"),
    ("HEAD", "/api/v1/namespaces/d/secrets/s", 3, "read of secrets"),
    ("GET", "/api/v1/namespaces/d/secrets", 3, "list of secrets"),
    ("GET", "/api/v1/secrets", 3, "list of secrets"),
    ("GET", "/api/v1/secrets?watch=true", 3, "watch of secrets"),
    ("GET", "/api/v1/watch/namespaces/d/secrets", 3, "watch of secrets"),
    ("GET", "/api/v1/watch/secrets/s", 3, "watch of secrets"),
    ("GET", "/api/v1/namespaces/kube-system/secrets/s", 3, "read of secrets"),
    ("POST", "/api/v1/namespaces/d/secrets", 3, "create of secrets"),
    ("PUT", "/api/v1/namespaces/d/secrets/s", 3, "update of secrets"),
    ("PATCH", "/api/v1/namespaces/d/secrets/s", 3, "patch of secrets"),
    ("DELETE", "/api/v1/namespaces/d/secrets/s", 3, "delete of secrets"),
    ("DELETE", "/api/v1/namespaces/d/secrets", 3, "deletecollection of secrets"),
    ("GET", "/apis/example.com/v1/namespaces/d/secrets", 3, "list of secrets"),
    ("POST", "/api/v1/namespaces/d/pods/p/eviction", 3, "eviction of a pod"),
    ("POST", "/apis/apps/v1/namespaces/d/deployments/w/rollback", 3, "unusual subresource"),
    // T4: break-glass subresources, whatever the verb
    ("POST", "/api/v1/namespaces/d/pods/p/exec?command=sh&command=-c", 4, "exec into a pod"),
    ("GET", "/api/v1/namespaces/d/pods/p/exec?command=sh", 4, "exec into a pod"),
    ("POST", "/api/v1/namespaces/d/pods/p/attach", 4, "attach to a pod"),
    ("GET", "/api/v1/namespaces/d/pods/p/attach", 4, "attach to a pod"),
    ("POST", "/api/v1/namespaces/d/pods/p/portforward", 4, "port-forward to a pod"),
    ("GET", "/api/v1/namespaces/d/pods/p/portforward?ports=80", 4, "port-forward to a pod"),
    ("GET", "/api/v1/namespaces/d/pods/p/proxy", 4, "proxy to pods"),
    ("GET", "/api/v1/namespaces/d/pods/p/proxy/metrics/x", 4, "proxy to pods"),
    ("GET", "/api/v1/namespaces/d/services/s/proxy/", 4, "proxy to services"),
    ("GET", "/api/v1/nodes/n/proxy/stats", 4, "proxy to nodes"),
    ("GET", "/api/v1/proxy/namespaces/d/pods/p", 4, "proxy to pods"),
    ("GET", "/api/v1/proxy/nodes/n/stats", 4, "proxy to nodes"),
    ("PATCH", "/api/v1/namespaces/d/pods/p/ephemeralcontainers", 4, "ephemeral container in a pod"),
    ("GET", "/api/v1/namespaces/d/pods/p/ephemeralcontainers", 4, "ephemeral container in a pod"),
    ("POST", "/api/v1/namespaces/d/serviceaccounts/s/token", 4, "token for a service account"),
    ("POST", "/apis/example.com/v1/namespaces/d/widgets/w/exec", 4, "exec on widgets"),
    // T4: writes to cluster-critical resources
    ("POST", "/api/v1/namespaces", 4, "create of namespaces"),
    ("DELETE", "/api/v1/namespaces/d", 4, "delete of namespaces"),
    ("PUT", "/api/v1/namespaces/d/finalize", 4, "update of namespaces/finalize"),
    ("PUT", "/api/v1/namespaces/d/status", 4, "update of namespaces/status"),
    ("PATCH", "/api/v1/nodes/n", 4, "patch of nodes"),
    ("PATCH", "/api/v1/nodes/n/status", 4, "patch of nodes/status"),
    ("DELETE", "/api/v1/nodes/n", 4, "delete of nodes"),
    ("POST", "/api/v1/persistentvolumes", 4, "create of persistentvolumes"),
    ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", 4, "create of customresourcedefinitions"),
    ("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x", 4, "delete of customresourcedefinitions"),
    ("POST", "/apis/apiregistration.k8s.io/v1/apiservices", 4, "create of apiservices"),
    ("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", 4, "mutatingwebhookconfigurations"),
    ("PATCH", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/v", 4, "validatingwebhookconfigurations"),
    ("POST", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies", 4, "validatingadmissionpolicies"),
    ("POST", "/api/v1/namespaces/d/pods/p/binding", 4, "binding a pod to a node"),
    ("POST", "/api/v1/namespaces/d/bindings", 4, "binding a pod to a node"),
    ("POST", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings", 4, "validatingadmissionpolicybindings"),
    ("POST", "/apis/admissionregistration.k8s.io/v1alpha1/mutatingadmissionpolicies", 4, "mutatingadmissionpolicies"),
    ("POST", "/apis/admissionregistration.k8s.io/v1alpha1/mutatingadmissionpolicybindings", 4, "mutatingadmissionpolicybindings"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/d/roles", 4, "create of roles"),
    ("PATCH", "/apis/rbac.authorization.k8s.io/v1/namespaces/d/rolebindings/b", 4, "patch of rolebindings"),
    ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/d/roles/r", 4, "delete of roles"),
    ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", 4, "create of clusterroles"),
    ("PUT", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/b", 4, "update of clusterrolebindings"),
    ("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", 4, "create of certificatesigningrequests"),
    ("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/c/approval", 4, "certificatesigningrequests/approval"),
    // T4: any other cluster-scoped write
    ("POST", "/apis/storage.k8s.io/v1/storageclasses", 4, "create of storageclasses (cluster-scoped)"),
    ("DELETE", "/apis/scheduling.k8s.io/v1/priorityclasses/p", 4, "delete of priorityclasses (cluster-scoped)"),
    ("PATCH", "/apis/example.com/v1/clusterwidgets/w", 4, "patch of clusterwidgets (cluster-scoped)"),
    ("DELETE", "/api/v1/pods", 4, "deletecollection of pods (cluster-scoped)"),
    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", 4, "create of tokenreviews"),
    // T4: writes in protected namespaces (including globs)
    ("POST", "/api/v1/namespaces/kube-system/configmaps", 4, "write in protected namespace kube-system"),
    ("PATCH", "/apis/apps/v1/namespaces/kube-system/daemonsets/d", 4, "write in protected namespace kube-system"),
    ("DELETE", "/api/v1/namespaces/kube-system/pods/p", 4, "write in protected namespace kube-system"),
    ("DELETE", "/api/v1/namespaces/kube-system/secrets/s", 4, "write in protected namespace kube-system"),
    ("POST", "/api/v1/namespaces/kube-system/pods/p/eviction", 4, "write in protected namespace kube-system"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l", 4, "write in protected namespace kube-system"),
    ("POST", "/api/v1/namespaces/infra-net/services", 4, "write in protected namespace infra-net"),
    ("POST", "/api/v1/namespaces/infra/services", 2, "create of services"),
    ("POST", "/api/v1/namespaces/kube-public/services", 2, "create of services"),
    // T4: non-GET to non-resource paths
    ("POST", "/api", 4, "post to non-resource path /api"),
    ("POST", "/apis/apps/v1", 4, "post to non-resource path /apis/apps/v1"),
    ("PUT", "/version", 4, "put to non-resource path /version"),
    ("DELETE", "/healthz", 4, "delete to non-resource path /healthz"),
    ("OPTIONS", "/", 4, "options to non-resource path /"),
    ("POST", "/logs/x", 4, "post to non-resource path /logs/x"),
    // disguises the apiserver decodes the same way: normalised, not refused
    ("GET", "/api/v1/namespaces/d/%73ecrets", 3, "list of secrets"),
    ("GET", "/api/v1/namespaces/d/%73%65%63%72%65%74%73/s", 3, "read of secrets"),
    ("GET", "/api/v1/namespaces/d/secrets/", 3, "list of secrets"),
    ("GET", "/%61pi/v1/namespaces/d/secrets", 3, "list of secrets"),
    ("POST", "/api/v1/namespaces/d/pods/p/%65xec", 4, "exec into a pod"),
    ("POST", "/api/v1/namespaces/d/pods/p/exec/", 4, "exec into a pod"),
    ("POST", "/api/v1/namespaces/kube%2Dsystem/configmaps", 4, "write in protected namespace kube-system"),
    ("GET", "/api/v1/pods?%77atch=1", 0, "watch of pods"),
    ("POST", "/api/v1/namespaces/d/pods?dry%52un=All", 0, "dry-run create of pods"),
    ("POST", "/api/v1/namespaces/d/pods?dryRun=%41ll", 0, "dry-run create of pods"),
];

/// Requests sluice refuses (400) rather than guess about.
#[rustfmt::skip]
const REFUSED: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/namespaces/d/secrets%2Fs", "encoded slash"),
    ("GET", "/api/v1/namespaces%2fd/secrets", "encoded slash"),
    ("GET", "/api/v1//namespaces/d/secrets", "empty segment"),
    ("GET", "/api/v1/namespaces/d/secrets//", "empty segment"),
    ("GET", "/api/v1/namespaces/d/./secrets", "dot segment"),
    ("GET", "/api/v1/namespaces/d/x/../secrets", "dot segment"),
    ("GET", "/api/v1/namespaces/d/%2e%2e/secrets", "dot segment"),
    ("GET", "/api/v1/namespaces/d/%2573ecrets", "double percent-encoding"),
    ("GET", "/api/v1/namespaces/d/%zzecrets", "invalid percent-encoding"),
    ("GET", "/api/v1/namespaces/d/Secrets", "not lowercase"),
    ("GET", "/API/v1/namespaces/d/secrets", "not lowercase"),
    ("POST", "/api/v1/namespaces/d/pods/p/Exec", "not lowercase"),
    ("POST", "/api/v1/namespaces/d/pods?dryRun=All&dryRun=All", "more than once"),
    ("GET", "/api/v1/secrets?watch=0&watch=1", "more than once"),
    ("POST", "/api/v1/namespaces/d/pods?dryRun=All;x=1", "';'"),
    ("TRACE", "/api/v1/namespaces/d/pods", "not served"),
    ("GET", "/api/v1/watch", "no resource"),
];

fn classify_one(
    classifier: &Classifier,
    method: &str,
    uri: &str,
) -> Result<Classification, String> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = uri.parse().unwrap();
    let info = RequestInfo::parse(&method, &uri, false).map_err(|e| e.0)?;
    Ok(classifier.classify(&info, "bot"))
}

#[test]
fn the_tier_table() {
    assert!(
        ROWS.len() + REFUSED.len() >= 150,
        "{} rows",
        ROWS.len() + REFUSED.len()
    );
    let classifier = classifier();
    let mut failures = Vec::new();
    for &(method, uri, tier, reason) in ROWS {
        match classify_one(&classifier, method, uri) {
            Ok(class) if class.tier.as_u8() == tier && class.reason.contains(reason) => {}
            outcome => failures.push(format!(
                "{method} {uri}: want T{tier} {reason:?}, got {outcome:?}"
            )),
        }
    }
    for &(method, uri, why) in REFUSED {
        match classify_one(&classifier, method, uri) {
            Err(message) if message.contains(why) => {}
            outcome => failures.push(format!(
                "{method} {uri}: want refusal {why:?}, got {outcome:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn runbooks_apply_only_to_their_agents() {
    let classifier = classifier();
    let uri: Uri = "/apis/apps/v1/namespaces/dev-a/deployments/w/scale"
        .parse()
        .unwrap();
    let info = RequestInfo::parse(&Method::PATCH, &uri, false).unwrap();
    assert_eq!(classifier.classify(&info, "bot").tier, Tier::T1);
    assert_eq!(classifier.classify(&info, "other").tier, Tier::T2);
    assert_eq!(Classifier::default().classify(&info, "bot").tier, Tier::T2);
}

#[test]
fn upgrade_is_classified_by_path() {
    let classifier = classifier();
    for method in [Method::GET, Method::POST] {
        let uri: Uri = "/api/v1/namespaces/d/pods/p/exec?command=sh"
            .parse()
            .unwrap();
        let info = RequestInfo::parse(&method, &uri, true).unwrap();
        assert_eq!(classifier.classify(&info, "bot").tier, Tier::T4);
    }
}

#[test]
fn tier_numbers_round_trip() {
    for n in 0..5 {
        assert_eq!(Tier::from_u8(n).map(Tier::as_u8), Some(n));
        assert_eq!(Tier::from_u8(n).unwrap().to_string(), n.to_string());
    }
    assert_eq!(Tier::from_u8(5), None);
    assert!(Tier::T4 > Tier::T3 && Tier::T1 > Tier::T0);
}
