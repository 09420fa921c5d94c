# The local base image for bundled tasks and the agent's terminal: Debian bookworm
# (imported from debootstrap, no registry needed) plus the tools tasks and tmux need.
ARG BASE=ablbench/debian:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update && apt-get install -y --no-install-recommends \
      bash coreutils tmux git python3 python3-venv openssl ca-certificates procps \
      make gcc libc6-dev sqlite3 jq less file curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
CMD ["sleep", "infinity"]
