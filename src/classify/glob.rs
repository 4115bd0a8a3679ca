//! Namespace globs (`*` any run of characters, `?` exactly one), compiled once at load so
//! matching a request allocates nothing.

/// A compiled namespace pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: Box<str>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `*`: every namespace, and the only pattern a request without a namespace matches.
    Any,
    Exact,
    /// `dev-*`
    Prefix(Box<str>),
    /// anything else with `*` or `?`
    Wild,
}

impl Glob {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty namespace pattern matches nothing".into());
        }
        if let Some(bad) = pattern
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '.' | '*' | '?'))
        {
            return Err(format!(
                "{pattern:?}: {bad:?} cannot appear in a namespace pattern \
                 (lowercase letters, digits, '-', '.', and the wildcards '*' and '?')"
            ));
        }
        let kind = if pattern == "*" {
            Kind::Any
        } else if !pattern.contains(['*', '?']) {
            Kind::Exact
        } else if let Some(prefix) = pattern
            .strip_suffix('*')
            .filter(|p| !p.contains(['*', '?']))
        {
            Kind::Prefix(prefix.into())
        } else {
            Kind::Wild
        };
        Ok(Glob {
            source: pattern.into(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern is exactly `*`.
    pub fn is_any(&self) -> bool {
        self.kind == Kind::Any
    }

    pub fn matches(&self, text: &str) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact => *self.source == *text,
            Kind::Prefix(prefix) => text.starts_with(&**prefix),
            Kind::Wild => wild_match(self.source.as_bytes(), text.as_bytes()),
        }
    }
}

/// Iterative `*` / `?` matching with single backtrack point: linear in practice, no
/// recursion, no allocation.
fn wild_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    #[test]
    fn glob_edges() {
        assert!(m("*", "anything"));
        assert!(m("*", ""));
        assert!(m("prod", "prod"));
        assert!(!m("prod", "prod2"));
        assert!(!m("prod", "pro"));
        assert!(m("dev-*", "dev-"));
        assert!(m("dev-*", "dev-a"));
        assert!(!m("dev-*", "dev"));
        assert!(!m("dev-*", "xdev-a"));
        assert!(m("*-dev", "team-dev"));
        assert!(!m("*-dev", "team-dev2"));
        assert!(m("team-?", "team-a"));
        assert!(!m("team-?", "team-"));
        assert!(!m("team-?", "team-ab"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("**", "x"));
        assert!(m("a**", "a"));
        assert!(m("?*", "a"));
        assert!(!m("?*", ""));
        assert!(m("*a*a*a*", "aaa"));
        assert!(!m("*a*a*a*", "aa"));
    }

    #[test]
    fn bad_globs_say_why() {
        assert!(Glob::new("").unwrap_err().contains("empty"));
        assert!(Glob::new("Prod").unwrap_err().contains("'P'"));
        assert!(Glob::new("dev-[ab]").unwrap_err().contains("'['"));
        assert!(Glob::new("dev/x").is_err());
        assert!(Glob::new("*").unwrap().is_any());
        assert!(!Glob::new("**").unwrap().is_any());
    }
}
