# The customerbus image: one static binary on distroless, as a non-root user.
# `make image` builds it; the command is the service to run, e.g.
#   docker run customerbus:dev customers
# No HEALTHCHECK: the orchestrator probes /healthz and /readyz itself
# (deploy/kubernetes), and compose runs `customerbus probe` (deploy/compose.yaml).

# The Go of go.mod. The build stage runs on the builder's platform and
# cross-compiles, so a multi-platform build needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum stay the same.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: a static binary, which needs no libc in the image;
# -trimpath and -s -w: no local paths or debug symbols in it.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/customerbus ./cmd/customerbus

# distroless static: CA certificates (SMTP over TLS, webhooks over https)
# and time zone data, no shell; :nonroot runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/customerbus /customerbus
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/customerbus"]
