# warden's container image: the `warden` binary (the shipped filters are
# built into it), the iptables tools in both variants (nft and legacy: warden
# uses whichever holds the host's Docker chains), ipset, and tini as PID 1.
#
# The default build compiles warden in the official Rust image and runs it on
# Debian 12 slim:
#
#   docker build -t warden .
#
# Without a registry (CI, offline machines), build the same file from a local
# Debian base made with debootstrap, with a binary compiled on the host
# (Debian 12, or any glibc <= 2.36); scripts/warden-image does exactly this:
#
#   scripts/base-image                       # -> warden-base:bookworm
#   cargo build --release --bin warden
#   mkdir -p target/image && cp target/release/warden target/image/warden
#   docker build -t warden:local \
#     --build-arg RUST_IMAGE=warden-base:bookworm \
#     --build-arg RUNTIME_IMAGE=warden-base:bookworm \
#     --build-arg PREBUILT=target/image/warden .
#
# Both Docker's classic builder (Debian's docker.io 20.10, docker-compose
# 1.29) and BuildKit build it.

ARG RUST_IMAGE=docker.io/library/rust:1-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# ---- build: compile warden, or take the prebuilt binary named by PREBUILT
FROM ${RUST_IMAGE} AS build
# Marks this stage's image, which the classic builder leaves untagged, so
# scripts/warden-image can prune old ones.
LABEL org.warden.stage=build
# A path inside the build context; empty means compile here.
ARG PREBUILT=
WORKDIR /src
COPY . .
# Debug info stays out of the image; symbol names stay in, for backtraces.
RUN set -eu; \
    if [ -n "$PREBUILT" ]; then \
        install -D -m 0755 "$PREBUILT" /out/warden; \
    else \
        CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo build --release --locked --bin warden; \
        install -D -m 0755 target/release/warden /out/warden; \
    fi; \
    /out/warden --version

# ---- runtime
FROM ${RUNTIME_IMAGE} AS runtime
# What warden runs besides itself: iptables-{nft,legacy}[-save,-restore] and
# ip6tables-* at startup, reload and shutdown (one at a time, never per
# ban); ipset for operators; tini as PID 1. A base that has them already
# (scripts/base-image) fetches nothing.
RUN set -eu; \
    packages="iptables ipset tini libsystemd0 ca-certificates"; \
    missing=""; \
    for p in $packages; do \
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*; \
    fi; \
    for tool in tini ipset iptables; do \
        command -v "$tool" >/dev/null || { echo "$tool is missing from the image" >&2; exit 1; }; \
    done; \
    for v in nft legacy; do for t in iptables ip6tables; do for s in "" -save -restore; do \
        command -v "$t-$v$s" >/dev/null || { echo "$t-$v$s is missing from the image" >&2; exit 1; }; \
    done; done; done; \
    mkdir -p /etc/warden /var/lib/warden /run/warden; \
    chmod 0700 /var/lib/warden /run/warden

COPY --from=build /out/warden /usr/local/bin/warden
COPY config/warden.yaml /etc/warden/warden.yaml

# iptables-legacy takes a lock file, /run/xtables.lock by default; with a
# read-only root filesystem only /run/warden (a tmpfs) is writable. To share
# the host's lock instead, mount /run/xtables.lock and point this at it.
ENV XTABLES_LOCKFILE=/run/warden/xtables.lock
# Bans, ban history and source cursors (redb).
VOLUME ["/var/lib/warden"]

# `warden status` asks the daemon over its control socket; it fails when the
# daemon does not answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["warden", "status"]

# tini is PID 1: it forwards SIGTERM to warden (which shuts down cleanly)
# and reaps any process orphaned in the container, such as the remains of an
# iptables call killed for overrunning its timeout.
ENTRYPOINT ["/usr/bin/tini", "--", "warden"]
CMD ["run", "--config", "/etc/warden/warden.yaml"]

ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
# Where the source lives (a repository URL); set by whoever publishes the image.
ARG SOURCE=
LABEL org.opencontainers.image.title="warden" \
      org.opencontainers.image.description="Docker-native intrusion prevention: fail2ban rebuilt for hosts whose services run in containers" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
