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
ENTRYPOINT ["/usr/local/bin/digitoll"]
CMD ["run"]
