# syntax=docker/dockerfile:1
# infergate epp: the endpoint picker (gRPC 9002, health 9003, metrics 9090).
# Build from the workspace root (docker/build.sh does):
#   docker build -f docker/epp.Dockerfile -t infergate/epp:0.1.0 .

# Builder: the workspace's toolchain (rust-version 1.95) on Debian 12, like the runtime's libc.
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p epp --bin epp \
 && install -D -m 0755 target/release/epp /out/epp

# Runtime: glibc + libgcc + CA certificates, no shell, no package manager; uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/epp /usr/local/bin/epp
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/epp"]
