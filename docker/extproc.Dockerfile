# syntax=docker/dockerfile:1
# infergate extproc: the ext_proc service (gRPC 1063, admin 1064).
# Build from the workspace root (docker/build.sh does):
#   docker build -f docker/extproc.Dockerfile -t infergate/extproc:0.1.0 .

# Builder: the workspace's toolchain (rust-version 1.95) on Debian 12, like the runtime's libc.
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p extproc --bin extproc \
 && install -D -m 0755 target/release/extproc /out/extproc

# Runtime: glibc + libgcc + CA certificates, no shell, no package manager; uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/extproc /usr/local/bin/extproc
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/extproc"]
