# Builds the worker, the enqueue CLI and the WeChat Pay sandbox into one
# small image; docker-compose.yml picks the program with `entrypoint`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/worker ./cmd/enqueue ./cmd/wechatpay-sandbox \
 && mkdir -p /out/sandbox

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /out/enqueue /out/wechatpay-sandbox /usr/local/bin/
# The sandbox writes its keys here; a named volume mounted on it starts as
# a copy of this directory, owned by the image's non-root user.
COPY --from=build --chown=65532:65532 /out/sandbox /sandbox
ENTRYPOINT ["/usr/local/bin/worker"]
