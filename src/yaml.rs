//! Reading YAML files into typed structs, with errors that name the file, the key path and
//! the problem (every config struct is `deny_unknown_fields`: a mistyped key in a security
//! product must fail loudly).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A YAML file that could not be read or did not match its schema.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The file could not be read at all.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML, or does not match the expected shape.
    #[error("{path}: {key}{message}")]
    Parse {
        path: PathBuf,
        /// `key path: ` (e.g. `agents.claude-code.rules[0].tiers: `), or empty at the top.
        key: String,
        message: String,
    },
}

/// Reads and parses `path`.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text, path)
}

/// Parses `text`, naming `origin` in errors.
pub fn parse_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, YamlError> {
    let parse_error = |key: String, message: String| YamlError::Parse {
        path: origin.to_owned(),
        key,
        message,
    };
    // An empty document is an empty mapping, so a file with only comments gets defaults.
    let text = if text.trim().is_empty() { "{}" } else { text };
    // The path-tracking error is kept aside: once deserialisation stops early, serde-saphyr
    // reports the unread rest of the input instead, which would hide the real problem.
    let mut path_error = None;
    let outcome =
        serde_saphyr::with_deserializer_from_str(
            text,
            |de| match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(value) => Ok(Some(value)),
                Err(err) => {
                    path_error = Some(err);
                    Ok(None)
                }
            },
        );
    if let Some(err) = path_error {
        let path = err.path().to_string();
        let key = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!("{path}: ")
        };
        return Err(parse_error(key, first_line(&err.into_inner().to_string())));
    }
    match outcome {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(parse_error(String::new(), "no value".into())),
        Err(err) => Err(parse_error(String::new(), first_line(&err.to_string()))),
    }
}

/// serde-saphyr renders a source snippet after the message; logs want one line.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        port: u16,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        inner: Inner,
    }

    #[test]
    fn unknown_key_names_file_and_key_path() {
        let err = parse_str::<Outer>("inner:\n  port: 1\n  prot: 2\n", Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.yaml: inner.prot: unknown field"),
            "{err}"
        );
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse_str::<Outer>("inner: {port: many}\n", Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("inner.port"), "{err}");
    }
}
