# One image with every service binary: docker build -t streamsuite .  (docker-compose up --build does this)
#
# The base images are build arguments, so the same file builds where no registry is reachable: BASE_IMAGE can be a
# locally imported Debian bookworm, and the stage `runtime-base` can be built alone (the classic builder builds
# every stage before its target, so it comes first) and given binaries built outside Docker; scripts/compose-test
# does both.
ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.88-bookworm

# What the binaries need at run time: the libraries they link, curl for the health checks, a non-root user and a
# state directory it owns (a named volume mounted there starts with that owner).
FROM ${BASE_IMAGE} AS runtime-base
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 libsasl2-2 zlib1g libzstd1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home stream \
    && install -d -o stream -g stream /home/stream/state
USER stream
WORKDIR /home/stream
ENV STATE_DIR=/home/stream/state

FROM ${RUST_IMAGE} AS build
# The build packages come from the project's one installer, the list scripts/demo and scripts/test use.
COPY scripts/setup /usr/local/bin/streamsuite-setup
RUN streamsuite-setup demo && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p txn-mailer -p stock-ticker -p fraud-detection -p fraud-eval -p iot-controller -p loadgen -p demo \
    && cp target/release/txn-mailer target/release/stock-ticker target/release/fraud-detection target/release/fraud-eval target/release/iot-controller target/release/loadgen target/release/demo /usr/local/bin/

FROM runtime-base AS runtime
COPY --from=build /usr/local/bin/txn-mailer /usr/local/bin/stock-ticker /usr/local/bin/fraud-detection /usr/local/bin/fraud-eval /usr/local/bin/iot-controller /usr/local/bin/loadgen /usr/local/bin/demo /usr/local/bin/
