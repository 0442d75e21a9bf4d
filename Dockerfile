# syntax=docker/dockerfile:1
# Multi-stage build: a static binary in a minimal image, running as a
# non-root user that may still bind port 53.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# A release passes its version: docker build --build-arg VERSION=v1.2.0 .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.releaseVersion=${VERSION}" -o /out/vigil ./cmd/vigil
# File capability so the unprivileged user can bind :53 under any runtime
# (Docker itself also allows it by default since 20.10, via
# net.ipv4.ip_unprivileged_port_start=0).
RUN apt-get update -qq && apt-get install -y -qq libcap2-bin >/dev/null \
 && setcap cap_net_bind_service=+ep /out/vigil \
 && mkdir -p /out/state /out/etc

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vigil /usr/local/bin/vigil
COPY --from=build --chown=nonroot:nonroot /out/state /var/lib/vigil
COPY --from=build /src/config.toml /etc/vigil/config.toml
USER nonroot
VOLUME ["/var/lib/vigil"]
EXPOSE 53/udp 53/tcp 8053/tcp
# Healthy when the API answers (the default http.listen is loopback inside
# the container, which is where the check runs).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/usr/local/bin/vigil", "health", "-config", "/etc/vigil/config.toml"]
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["serve", "-config", "/etc/vigil/config.toml"]
