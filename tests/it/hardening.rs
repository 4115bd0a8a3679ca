//! Hostile input against the real binary: each attack must be refused (or classified
//! safely), must not reach the upstream when refused, and must leave sluice serving.

mod bodies;
mod connections;
mod h2;
mod headers;
mod paths;
mod upgrades;

/// Reads only: anything at T1 or above is denied. What a disguise must not get past.
pub(crate) const T0_ONLY: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [\"*\"]
        tiers: {0: allow}
";
