# syntax=docker/dockerfile:1
# infergate xds-server: the control plane (ADS gRPC 18000, admin 18001).
# Build from the workspace root (docker/build.sh does):
#   docker build -f docker/xds-server.Dockerfile -t infergate/xds-server:0.1.0 .

# Builder: the workspace's toolchain (rust-version 1.95) on Debian 12, like the runtime's libc.
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p xds-server --bin xds-server \
 && install -D -m 0755 target/release/xds-server /out/xds-server

# Runtime: glibc + libgcc + CA certificates, no shell, no package manager; uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/xds-server /usr/local/bin/xds-server
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/xds-server"]
