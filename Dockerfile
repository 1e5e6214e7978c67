# One image for the operator and the ingest worker: `livestream controller` and
# `livestream worker` (which runs ffmpeg from Debian).
#
#   buildah build -t livestream .            (or docker build): builds the binary in the
#                                            `build` stage, release profile
#   buildah build --target prebuilt --build-arg LIVESTREAM_BINARY=PATH -t livestream .
#                                            copies a binary built on the host instead (PATH
#                                            inside the build context); the tests do this
#
# Both put the binary into the same `runtime` stage: what users get is what the tests run.

# Debian with ffmpeg, libsrt (the GnuTLS build that Debian's ffmpeg itself links, for SRT
# ingest) and CA certificates, and a fixed non-root user matching the pods' runAsUser.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg libsrt1.5-gnutls ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532
EXPOSE 1935 8080 9000/udp
ENTRYPOINT ["/usr/local/bin/livestream"]

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsrt-gnutls-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN cargo build --release --locked --bin livestream

# The runtime stage with a binary built on the host (glibc of bookworm or older).
FROM runtime AS prebuilt
ARG LIVESTREAM_BINARY=target/release/livestream
COPY --chmod=0755 ${LIVESTREAM_BINARY} /usr/local/bin/livestream

FROM runtime
COPY --from=build /src/target/release/livestream /usr/local/bin/livestream
