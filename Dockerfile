# One image for the worker and the simulator: `digitoll run` and `digitoll sim`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/digitoll ./cmd/digitoll

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/digitoll /usr/local/bin/digitoll
USER nonroot:nonroot
WORKDIR /home/nonroot
# /healthz, /readyz and /metrics of `digitoll run` (DIGITOLL_HTTP_ADDR).
EXPOSE 8081
# The image has no shell or curl: the binary asks its own /readyz.
# Containers running another subcommand (sim) override or disable it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/digitoll", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/digitoll"]
CMD ["run"]
