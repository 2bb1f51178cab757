# The uringws server in a container.
#
#   docker build -t uringws .
#   docker run --rm -p 9001:9001 --ulimit nofile=1048576:1048576 \
#     --security-opt seccomp=seccomp-io_uring.json uringws
#
# Docker 25 and later (and containerd's default profile) refuse io_uring's
# system calls: without a profile that allows them the server exits at
# start with "io_uring_setup: Operation not permitted: io_uring is blocked
# …". docs/running.md says how to make seccomp-io_uring.json from Docker's
# own profile.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p uringws-server

FROM debian:bookworm-slim
COPY --from=build /src/target/release/uringws /usr/local/bin/uringws
COPY server/uringws.example.toml /etc/uringws/uringws.toml
USER 65534:65534
EXPOSE 9001
# 0.0.0.0: inside a container the loopback default reaches nobody.
ENTRYPOINT ["/usr/local/bin/uringws", "--config", "/etc/uringws/uringws.toml", "--listen", "0.0.0.0:9001"]
