//! Property tests of the parser + classifier on hostile input: any method and target, and
//! byte-level mutations of secret and break-glass paths. Invariants: nothing panics, and
//! whenever the apiserver would read a mutated path as the original request, sluice either
//! refuses it or classifies it at least as high as the original.

use http::{Method, Uri};
use proptest::prelude::*;

use super::normalise::normalise_path;
use super::query::scan_query;
use super::{MAX_SEGMENTS, Parts, RequestInfo};
use crate::classify::{Classifier, Tier};

/// (method, path, query, the lowest tier the request may get)
const TARGETS: &[(&str, &str, &str, Tier)] = &[
    ("GET", "/api/v1/namespaces/prod/secrets/db", "", Tier::T3),
    ("GET", "/api/v1/secrets", "watch=1", Tier::T3),
    ("DELETE", "/api/v1/namespaces/prod/secrets", "", Tier::T3),
    (
        "GET",
        "/api/v1/namespaces/prod/pods/web/exec",
        "command=sh",
        Tier::T4,
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/pods/web/attach",
        "stdin=1",
        Tier::T4,
    ),
    (
        "GET",
        "/api/v1/namespaces/prod/pods/web/portforward",
        "",
        Tier::T4,
    ),
    (
        "GET",
        "/api/v1/proxy/namespaces/prod/pods/web/x",
        "",
        Tier::T4,
    ),
    (
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "",
        Tier::T4,
    ),
    (
        "PUT",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/roles/r",
        "",
        Tier::T4,
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/serviceaccounts/sa/token",
        "",
        Tier::T4,
    ),
];

/// What an attacker splices into a path.
const TOKENS: &[&str] = &[
    "%", "%2F", "%2f", "%2e", "%2E%2E", ".", "..", "/", "//", "%00", "%C0%AF", "%c0%ae", "%25",
    "%252F", "\\", ";", "%3B", "%20", "+", "~", "%7E", "%73", "%65", "x", "S", "%ff", "é",
];

/// The path segments kube-apiserver's RequestInfoFactory works on: Go's `URL.Path` (the
/// percent-decoded path; an invalid escape is a 400 there), trimmed of slashes, split on `/`.
fn apiserver_segments(raw_path: &str) -> Option<Vec<Vec<u8>>> {
    let raw = raw_path.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    let start = decoded
        .iter()
        .position(|b| *b != b'/')
        .unwrap_or(decoded.len());
    let end = decoded
        .iter()
        .rposition(|b| *b != b'/')
        .map_or(start, |e| e + 1);
    Some(
        decoded[start..end.max(start)]
            .split(|b| *b == b'/')
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// Applies `ops` to `path`: (position, kind, token). Half the ops percent-encode the
/// character at the position (which the apiserver decodes back: same meaning), most of the
/// rest insert a token, and a few delete a character.
fn mutate(path: &str, ops: &[(usize, u8, usize)]) -> String {
    let mut chars: Vec<String> = path.chars().map(String::from).collect();
    for &(at, kind, token) in ops {
        let at = at % (chars.len() + 1);
        match (kind, at < chars.len()) {
            (0..50, true) => {
                let c = chars[at].clone();
                chars[at] = c.bytes().map(|b| format!("%{b:02X}")).collect();
            }
            (50..90, _) | (0..50, false) => {
                chars.insert(at, TOKENS[token % TOKENS.len()].to_owned())
            }
            (_, true) => {
                chars.remove(at);
            }
            _ => {}
        }
    }
    chars.concat()
}

fn tier_of(method: &str, target: &str) -> Option<Result<Tier, String>> {
    let uri: Uri = target.parse().ok()?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let upgrade = method == Method::GET && target.contains("/exec");
    Some(
        RequestInfo::parse(&method, &uri, upgrade)
            .map(|info| Classifier::default().classify(&info, "bot").tier)
            .map_err(|e| e.0),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_method_and_target_never_panics(
        method in "[A-Z]{1,8}",
        path in "/[ -~]{0,80}",
        query in proptest::option::of("[ -~&=%;+]{0,40}"),
    ) {
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let _ = tier_of(&method, &target);
    }

    #[test]
    fn arbitrary_bytes_in_the_path_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut target = String::from("/api/v1/namespaces/");
        target.extend(bytes.iter().map(|b| format!("%{b:02x}")));
        let _ = tier_of("GET", &target);
        let _ = tier_of("POST", &format!("/api/v1/namespaces/{}", String::from_utf8_lossy(&bytes)));
    }

    /// A path sluice accepts is split into exactly the segments the apiserver's
    /// RequestInfoFactory works on (decoded, outer slashes trimmed, split on `/`).
    #[test]
    fn an_accepted_path_splits_as_the_apiserver_splits_it(
        segments in proptest::collection::vec(
            prop_oneof![
                8 => prop_oneof![
                    Just("api"), Just("apis"), Just("v1"), Just("pods"), Just("namespaces"),
                    Just("a.b"), Just("..."), Just("é"), Just("x-1"), Just("~"), Just("a:b"),
                ],
                3 => prop_oneof![Just(""), Just("."), Just("..")],
                1 => prop_oneof![Just("%2F"), Just("x%41"), Just("Pods"), Just("\u{1}"), Just("%")],
            ],
            0..10,
        ),
        slashes in (0..3usize, 0..3usize),
    ) {
        let raw = format!("{}{}{}", "/".repeat(slashes.0), segments.join("/"), "/".repeat(slashes.1));
        let Ok(path) = normalise_path(&raw) else {
            return Ok(());
        };
        let parts = Parts::split(&path);
        let split: Vec<&str> = (0..parts.len).filter_map(|i| parts.peek(i)).collect();
        let expected: Vec<Vec<u8>> = apiserver_segments(&raw)
            .unwrap_or_default()
            .into_iter()
            .filter(|segment| !segment.is_empty())
            .take(MAX_SEGMENTS)
            .collect();
        let split: Vec<Vec<u8>> = split.iter().map(|s| s.as_bytes().to_vec()).collect();
        prop_assert_eq!(split, expected, "{:?}", raw);
    }

    /// A harmless encoded pair appended to a query changes nothing it says.
    #[test]
    fn a_harmless_encoded_pair_changes_nothing(
        pairs in proptest::collection::vec(
            (
                prop_oneof![Just("watch"), Just("dryRun"), Just("limit"), Just(""), Just("dryrun")],
                prop_oneof![Just(None), Just(Some("")), Just(Some("0")), Just(Some("1")),
                    Just(Some("false")), Just(Some("FALSE")), Just(Some("All")), Just(Some("all"))],
            ),
            0..5,
        ),
    ) {
        let query = pairs
            .iter()
            .map(|(key, value)| match value {
                Some(value) => format!("{key}={value}"),
                None => (*key).to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        let decoding = format!("{query}&x=%41");
        prop_assert_eq!(scan_query(Some(&query)), scan_query(Some(&decoding)), "{}", query);
    }

    #[test]
    fn a_mutation_the_apiserver_sees_through_never_lowers_the_tier(
        index in 0..TARGETS.len(),
        ops in proptest::collection::vec((0..80usize, 0..100u8, 0..TOKENS.len()), 1..5),
    ) {
        let (method, path, query, floor) = TARGETS[index];
        let mutated = mutate(path, &ops);
        let target = if query.is_empty() { mutated.clone() } else { format!("{mutated}?{query}") };
        let Some(outcome) = tier_of(method, &target) else {
            return Ok(()); // not a valid request target: hyper answers 400
        };
        let same_meaning = apiserver_segments(&mutated).is_some()
            && apiserver_segments(&mutated) == apiserver_segments(path);
        if let (Ok(tier), true) = (outcome, same_meaning) {
            prop_assert!(tier >= floor, "{method} {target} → T{tier} below T{floor}");
        }
    }
}

#[test]
fn the_mutator_and_the_model_do_what_they_say() {
    assert_eq!(mutate("/api", &[(1, 0, 0)]), "/%61pi");
    assert_eq!(mutate("/api", &[(0, 60, 0)]), "%/api");
    assert_eq!(mutate("/api", &[(1, 95, 0)]), "/pi");
    assert_eq!(
        apiserver_segments("//api/v1/%73ecrets/"),
        apiserver_segments("/api/v1/secrets")
    );
    assert_ne!(
        apiserver_segments("/api//v1"),
        apiserver_segments("/api/v1")
    );
    assert_eq!(apiserver_segments("/api/%zz"), None);
}
