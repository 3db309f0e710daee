# syntax=docker/dockerfile:1
# infergate ratelimit: the rate limit service (gRPC 8081, admin 8082).
# Build from the workspace root (docker/build.sh does):
#   docker build -f docker/ratelimit.Dockerfile -t infergate/ratelimit:0.1.0 .

# Builder: the workspace's toolchain (rust-version 1.95) on Debian 12, like the runtime's libc.
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ratelimit --bin ratelimit \
 && install -D -m 0755 target/release/ratelimit /out/ratelimit

# Runtime: glibc + libgcc + CA certificates, no shell, no package manager; uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/ratelimit /usr/local/bin/ratelimit
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/ratelimit"]
