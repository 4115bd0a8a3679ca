# syntax=docker/dockerfile:1
# The sluice image: built on Debian bookworm, run on distroless (glibc from the same Debian
# release, no shell, no package manager) as the nonroot user 65532.
#
#   docker build -t ghcr.io/sluice-proxy/sluice:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore): Cargo.toml may name benches and tests, which
# cargo wants to see even when it only builds the binary.
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out
# of the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sluice \
    && cp target/release/sluice /usr/local/bin/sluice

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/sluice /sluice
USER 65532:65532
# 8443: agents (TLS). 9443: admin (approvals API, /healthz, /readyz, /metrics).
EXPOSE 8443 9443
ENTRYPOINT ["/sluice", "serve", "--config", "/etc/sluice/sluice.yaml"]
