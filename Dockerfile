# syntax=docker/dockerfile:1
#
# kafka-rest-proxy container image.
#
#   docker build -t kafka-rest-proxy:local \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# With podman or buildah, add `--format docker`: the OCI image format has no HEALTHCHECK and
# they would drop it. scripts/image-check.sh builds and checks it without a registry.
#
# Build stage: librdkafka is compiled by the rdkafka crate and linked statically, against
# the system OpenSSL and zlib (dynamically), with the `image` profile (release without debug
# info). Runtime stage: FROM scratch, holding the binary, the shared libraries it loads
# (found with ldd), the CA bundle and a passwd entry for its user: no shell, no package
# manager, no setuid binaries. The health check is the binary itself.

# Pinned: a new Rust or Debian point release is a change to review, not a side effect of a
# rebuild. scripts/image-check.sh builds local images under these names.
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:12.15-slim

FROM ${RUST_IMAGE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libssl-dev make gcc g++ perl pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole crate (.dockerignore keeps target/, .git/ and the deployment files out), so
# any [[test]]/[[bench]] target Cargo.toml declares still finds its file.
COPY . .
# The cache mounts keep the crates.io downloads and the compiled dependencies (librdkafka is
# the slow part) between builds; the binary is copied out of the cached target directory.
# `locked`: two builds at once wait for each other instead of corrupting the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --profile image --locked --bin kafka-rest-proxy \
    && install -D -m 0755 target/image/kafka-rest-proxy /out/kafka-rest-proxy

# Gathers the runtime's files under /rootfs from the Debian packages the binary links to.
FROM ${DEBIAN_IMAGE} AS rootfs
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/kafka-rest-proxy /rootfs/usr/local/bin/kafka-rest-proxy
# The shared libraries at the paths ldd resolves them to (the loader at the ELF interpreter's
# path); OpenSSL's directory with the CA bundle it points to (librdkafka, the Schema Registry
# and Redis clients verify servers with it); nsswitch.conf for host name lookups; a user
# without a shell. The binary's --version in a chroot proves nothing it loads is missing.
RUN set -eu; \
    ldd /rootfs/usr/local/bin/kafka-rest-proxy > /tmp/ldd; \
    grep -o '/[^ ]*' /tmp/ldd > /tmp/libs; \
    while read -r lib; do cp --parents -L "$lib" /rootfs; done < /tmp/libs; \
    cp -a --parents /usr/lib/ssl /etc/ssl/certs /usr/share/ca-certificates \
        /etc/nsswitch.conf /rootfs; \
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nkrp:x:10001:10001:kafka-rest-proxy:/nonexistent:/usr/sbin/nologin\n' \
        > /rootfs/etc/passwd; \
    printf 'root:x:0:\nkrp:x:10001:\n' > /rootfs/etc/group; \
    install -d -m 1777 /rootfs/tmp; \
    chroot /rootfs /usr/local/bin/kafka-rest-proxy --version

FROM scratch AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/example/kafka-rest-proxy
LABEL org.opencontainers.image.title="kafka-rest-proxy" \
      org.opencontainers.image.description="Confluent REST Proxy compatible HTTP produce service for Kafka (Rust, actix-web, librdkafka)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=rootfs /rootfs/ /
COPY config/production.toml /etc/kafka-rest-proxy/production.toml

# The settings file; KAFKA_CREDS and KRP_<SECTION>__<KEY> variables override it (an empty
# KRP_ variable clears an optional setting of the file, README "Configuration").
ENV KRP_CONFIG=/etc/kafka-rest-proxy/production.toml

USER 10001:10001
# The API (server.listen) and Prometheus (metrics.listen).
EXPOSE 8082 9102
# ECS/compose send SIGTERM; the service drains within server.shutdown_timeout_ms (25 s).
STOPSIGNAL SIGTERM
# The subcommand reads the same settings as the server (KRP_CONFIG, KRP_*), so it probes the
# port the service listens on, whatever KRP_SERVER__LISTEN says.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/kafka-rest-proxy", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kafka-rest-proxy"]
