# The services' image in CI: the Dockerfile's runtime-base stage (RUNTIME_BASE) holding the binaries scripts/test
# built on the host (a Debian bookworm too), copied from the build context's bin/.
ARG RUNTIME_BASE
FROM ${RUNTIME_BASE}
COPY bin/ /usr/local/bin/
