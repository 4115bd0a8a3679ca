//! (Skeleton: filled in by the proxy-core work.)
