# syntax=docker/dockerfile:1

# Build a static binary. The version comes from a build argument because
# .git is not in the build context:
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t wren .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath \
        -ldflags="-s -w -X main.version=${VERSION}" \
        -o /out/wren ./cmd/wren \
    && mkdir -p /out/data

# distroless/static has CA certificates, /etc/passwd with a "nonroot" user
# (65532) and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wren /wren
# The data directory must belong to the non-root user before VOLUME so that a
# fresh named volume inherits the ownership.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME /data
WORKDIR /data
# 4150 TCP, 4151 HTTP, 4152 HTTPS (nsqd); 4160 TCP, 4161 HTTP (lookup).
EXPOSE 4150 4151 4152 4160 4161
ENTRYPOINT ["/wren"]
CMD ["--data-path=/data"]
