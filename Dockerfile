# syntax=docker/dockerfile:1
#
# kafka-rest-proxy container image.
#
#   docker build -t kafka-rest-proxy:local \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# Build stage: librdkafka is compiled by the rdkafka crate and linked statically, against
# the system OpenSSL and zlib (dynamically). Runtime stage: Debian slim with libssl3 and the
# CA bundle, nothing else (no shell is needed: the health check is the binary itself).

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
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
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kafka-rest-proxy \
    && install -D -m 0755 target/release/kafka-rest-proxy /out/kafka-rest-proxy

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
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
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 krp \
    && useradd --system --uid 10001 --gid krp --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin krp

COPY --from=builder /out/kafka-rest-proxy /usr/local/bin/kafka-rest-proxy
COPY config/production.toml /etc/kafka-rest-proxy/production.toml

# The settings file; KAFKA_CREDS and KRP_<SECTION>__<KEY> variables override it.
ENV KRP_CONFIG=/etc/kafka-rest-proxy/production.toml

USER 10001:10001
EXPOSE 8082
# ECS/compose send SIGTERM; the service drains within server.shutdown_timeout_ms (25 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/kafka-rest-proxy", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kafka-rest-proxy"]
