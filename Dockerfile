# syntax=docker/dockerfile:1
# Hearth's container image: built from this repository with the locked dependencies, run as a
# non-root user from a small Debian image. docs/install.md explains every setting.
#
#   docker build -t hearth --build-arg HEARTH_GIT_REV="$(git rev-parse --short=12 HEAD)" .
#   docker run -p 5052:5052 -v hearth-data:/data hearth

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# make: jemalloc, Hearth's allocator, is compiled from source during the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .git is not in the build context (.dockerignore), so `hearth --version` takes its revision
# from this argument; without it the image says "unknown".
ARG HEARTH_GIT_REV=unknown
ENV HEARTH_GIT_REV=${HEARTH_GIT_REV}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hearth \
    && install -m 0755 target/release/hearth /usr/local/bin/hearth

FROM debian:bookworm-slim
# ca-certificates: model servers and GitLab are reached over HTTPS with the system's roots.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin hearth \
    && install -d -o hearth -g hearth -m 0700 /data
COPY --from=build /usr/local/bin/hearth /usr/local/bin/hearth

# Every setting is an environment variable (README, "Configuration"); these make the image
# listen beyond the container and keep its state in the volume.
ENV HEARTH_LISTEN=0.0.0.0:5052 \
    HEARTH_DATA_DIR=/data \
    HEARTH_LOG_FORMAT=json
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5052
# `hearth health` reads HEARTH_LISTEN (and HEARTH_TLS_CERT for https): no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["hearth", "health"]
ENTRYPOINT ["hearth"]
CMD ["serve"]
