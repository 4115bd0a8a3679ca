//! Property tests: no disguise of a secret path classifies below T3, and none of a
//! break-glass path below T4: each is either seen through or refused.

use http::{Method, Uri};
use proptest::prelude::*;

use super::*;

/// (method, path, query, the lowest tier any disguise of it may get)
const TARGETS: &[(&str, &str, &str, Tier)] = &[
    ("GET", "/api/v1/namespaces/prod/secrets/db", "", Tier::T3),
    (
        "GET",
        "/api/v1/namespaces/prod/secrets",
        "limit=500",
        Tier::T3,
    ),
    ("GET", "/api/v1/secrets", "watch=1", Tier::T3),
    ("GET", "/api/v1/watch/namespaces/prod/secrets", "", Tier::T3),
    (
        "POST",
        "/api/v1/namespaces/prod/secrets",
        "fieldManager=kubectl",
        Tier::T3,
    ),
    ("PUT", "/api/v1/namespaces/prod/secrets/db", "", Tier::T3),
    (
        "PATCH",
        "/api/v1/namespaces/prod/secrets/db",
        "dryRun=All",
        Tier::T3,
    ),
    ("DELETE", "/api/v1/namespaces/prod/secrets/db", "", Tier::T3),
    (
        "GET",
        "/api/v1/namespaces/prod/pods/web/exec",
        "command=sh&stdin=true",
        Tier::T4,
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/pods/web/exec",
        "command=sh&command=-c",
        Tier::T4,
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/pods/web/attach",
        "stdin=true",
        Tier::T4,
    ),
    (
        "GET",
        "/api/v1/namespaces/prod/pods/web/portforward",
        "ports=80",
        Tier::T4,
    ),
    (
        "GET",
        "/api/v1/namespaces/prod/services/web/proxy/admin",
        "",
        Tier::T4,
    ),
    (
        "PATCH",
        "/api/v1/namespaces/prod/pods/web/ephemeralcontainers",
        "",
        Tier::T4,
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/serviceaccounts/sa/token",
        "dryRun=All",
        Tier::T4,
    ),
    (
        "POST",
        "/api/v1/namespaces/kube-system/configmaps",
        "",
        Tier::T4,
    ),
];

/// Reads choices off `tape`; once it runs out, every choice is "leave it alone".
struct Tape<'a>(std::slice::Iter<'a, u8>);

impl Tape<'_> {
    fn next(&mut self, choices: u8) -> Option<u8> {
        self.0.next().map(|b| b % choices)
    }
}

/// Rewrites `path?query` with encodings, dot and empty segments, case changes, trailing
/// slashes and duplicated parameters, as chosen by `tape`.
fn disguise(path: &str, query: &str, tape: &[u8], structural: bool) -> String {
    let mut tape = Tape(tape.iter());
    let mut out = String::new();
    for segment in path.split('/').skip(1) {
        out.push('/');
        if structural {
            match tape.next(8) {
                Some(0) => out.push_str("./"),
                Some(1) => out.push_str("x/../"),
                Some(2) => out.push('/'),
                _ => {}
            }
        }
        for c in segment.chars() {
            match tape.next(if structural { 6 } else { 3 }) {
                Some(0) => out.push_str(&format!("%{:02X}", c as u32)),
                Some(1) => out.push_str(&format!("%{:02x}", c as u32)),
                Some(2) if structural => out.push(c.to_ascii_uppercase()),
                _ => out.push(c),
            }
        }
    }
    let trailing = tape.next(if structural { 3 } else { 2 }).unwrap_or(0);
    out.extend(std::iter::repeat_n('/', usize::from(trailing)));
    let mut query = query.to_owned();
    if structural {
        let extra = [
            "",
            "dryRun=All",
            "watch=1",
            "dryRun=All&dryRun=All",
            "watch=0&watch=1",
        ];
        let pick = extra[usize::from(tape.next(extra.len() as u8).unwrap_or(0))];
        if !pick.is_empty() {
            query = if query.is_empty() {
                pick.to_owned()
            } else {
                format!("{query}&{pick}")
            };
        }
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    out
}

fn outcome(method: &str, target: &str) -> Result<(RequestInfo, Classification), String> {
    let uri: Uri = target.parse().map_err(|e| format!("{e}"))?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| format!("{e}"))?;
    let info = RequestInfo::parse(&method, &uri, false).map_err(|e| e.0)?;
    let class = Classifier::default().classify(&info, "bot");
    Ok((info, class))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_disguise_lowers_the_tier(
        index in 0..TARGETS.len(),
        tape in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let (method, path, query, floor) = TARGETS[index];
        let target = disguise(path, query, &tape, true);
        if let Ok((info, class)) = outcome(method, &target) {
            prop_assert!(
                class.tier >= floor,
                "{method} {target} → {class:?} below {floor} ({info:?})"
            );
        }
    }

    #[test]
    fn percent_encoding_and_one_trailing_slash_change_nothing(
        index in 0..TARGETS.len(),
        tape in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let (method, path, query, _) = TARGETS[index];
        let plain = outcome(method, &format!("{path}?{query}")).unwrap();
        let target = disguise(path, query, &tape, false);
        let disguised = outcome(method, &target);
        prop_assert_eq!(disguised, Ok(plain), "{}", target);
    }
}

#[test]
fn disguise_is_a_disguise() {
    // The generator must actually produce each form, or the properties prove nothing.
    let path = "/api/v1/secrets";
    assert_eq!(disguise(path, "", &[], true), "/api/v1/secrets");
    assert_eq!(disguise(path, "", &[0], true), "/./api/v1/secrets");
    assert_eq!(disguise(path, "", &[1], true), "/x/../api/v1/secrets");
    assert_eq!(disguise(path, "", &[2], true), "//api/v1/secrets");
    assert_eq!(disguise(path, "", &[3, 0], true), "/%61pi/v1/secrets");
    assert_eq!(
        disguise(path, "", &[3, 5, 5, 5, 3, 1, 1], true),
        "/api/%76%31/secrets"
    );
    assert_eq!(disguise(path, "", &[3, 2], true), "/Api/v1/secrets");
    let tail = [3, 5, 5, 5, 3, 5, 5, 3, 5, 5, 5, 5, 5, 5, 5, 2, 3];
    assert_eq!(
        disguise(path, "watch=1", &tail, true),
        "/api/v1/secrets//?watch=1&dryRun=All&dryRun=All"
    );
}
