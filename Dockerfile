# One image with every service binary. Build: docker build -t streamsuite .
FROM rust:1.88-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake libclang-dev libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev libsasl2-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p txn-mailer -p stock-ticker -p fraud-detection -p iot-controller -p loadgen -p demo \
    && cp target/release/txn-mailer target/release/stock-ticker target/release/fraud-detection target/release/fraud-eval target/release/iot-controller target/release/loadgen target/release/demo /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 libsasl2-2 zlib1g libzstd1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home stream
COPY --from=build /usr/local/bin/txn-mailer /usr/local/bin/stock-ticker /usr/local/bin/fraud-detection /usr/local/bin/fraud-eval /usr/local/bin/iot-controller /usr/local/bin/loadgen /usr/local/bin/demo /usr/local/bin/
USER stream
WORKDIR /home/stream
ENV STATE_DIR=/home/stream/state
