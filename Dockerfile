# One image for the operator and the ingest worker: `livestream controller` and
# `livestream worker` (which runs ffmpeg from Debian).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin livestream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/livestream /usr/local/bin/livestream
# A fixed non-root user, matching the pods' runAsUser.
USER 65532:65532
EXPOSE 1935 8080
ENTRYPOINT ["/usr/local/bin/livestream"]
