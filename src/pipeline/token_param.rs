//! Bearer tokens in the query string (`?access_token=`): some clients put one there, where it
//! would end up in access logs and in the apiserver's audit. sluice refuses such a request
//! (400) and records it with the value replaced.

use std::borrow::Cow;

/// The query parameter some clients use to carry a bearer token.
pub const TOKEN_PARAM: &str = "access_token";

/// `path_and_query` with the value of any `access_token` parameter replaced, so no token
/// is ever stored in the audit log (the request itself is refused).
pub fn redact_tokens(path_and_query: &str) -> Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    if !query.split('&').any(|pair| is_token_param(key_of(pair))) {
        return Cow::Borrowed(path_and_query);
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = key_of(pair);
            if is_token_param(key) {
                format!("{key}=<redacted>")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    Cow::Owned(format!("{path}?{}", query.join("&")))
}

/// The key of one `key=value` query pair.
fn key_of(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(key, _)| key)
}

/// Whether a (possibly percent-encoded) query key names the token parameter.
fn is_token_param(key: &str) -> bool {
    key.len() >= TOKEN_PARAM.len()
        && percent_encoding::percent_decode_str(key)
            .decode_utf8_lossy()
            .eq_ignore_ascii_case(TOKEN_PARAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_the_query_never_reach_the_record() {
        assert_eq!(
            redact_tokens("/api/v1/pods?watch=1&access_token=s3cret&x=y"),
            "/api/v1/pods?watch=1&access_token=<redacted>&x=y"
        );
        assert_eq!(
            redact_tokens("/api?Access%5Ftoken=s3cret"),
            "/api?Access%5Ftoken=<redacted>"
        );
        assert_eq!(
            redact_tokens("/api/v1/pods?limit=5"),
            "/api/v1/pods?limit=5"
        );
    }
}
