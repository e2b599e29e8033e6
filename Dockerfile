# The isobench service image: FROM scratch around the static isobench-server, non-root, no shell.
#
#   DOCKER_BUILDKIT=1 docker build -t isobench .     from source (pulls the Rust build image)
#   docker run --rm -p 127.0.0.1:8080:8080 isobench
#
# The test suite builds the `prebuilt` stage offline instead, from a context holding only this
# file and dist/isobench-server (a static binary built on the host). Stage order matters: the
# legacy builder (Docker 20.10's default, and what the engine API uses) builds every stage up
# to --target, so the offline stage comes first and needs no base image at all. Both runtime
# stages are identical but for where the binary comes from.

# --- prebuilt: packages a static server from the build context (offline) ---
FROM scratch AS prebuilt
COPY dist/isobench-server /isobench-server
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/isobench-server"]
CMD ["--bind", "0.0.0.0", "--port", "8080"]

# --- build: compiles the static server from source ---
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --no-default-features \
      --bin isobench-server --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/isobench-server /isobench-server

# --- runtime (default): the prebuilt stage's runtime, with the binary built from source ---
FROM scratch AS runtime
COPY --from=build /isobench-server /isobench-server
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/isobench-server"]
CMD ["--bind", "0.0.0.0", "--port", "8080"]
