# syntax=docker/dockerfile:1
# Signalbox, every role in one image: `docker run IMAGE api|worker|migrate|...`.
#
#   docker build -t signalbox .
#
# The build stage compiles a static binary (no cgo); the final stage is
# distroless "static": CA certificates and time zones, no shell, no package
# manager, running as an unprivileged user. Health checks use the binary
# itself: `signalbox probe http://127.0.0.1:8080/readyz`.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-buildvcs=false
# Dependencies first, so a source change reuses the module layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	go build -trimpath -ldflags='-s -w' -o /out/signalbox ./cmd/signalbox

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/signalbox /usr/local/bin/signalbox
# 65532 is distroless's "nonroot"; numeric, so Kubernetes' runAsNonRoot can
# verify it.
USER 65532:65532
# The API listens on 8080; a worker serves its probes on 8081 (HEALTH_ADDR).
ENV HTTP_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/signalbox"]
CMD ["api"]
