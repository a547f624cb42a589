# The regie operator image: one static-enough binary on a distroless base, running as the
# non-root user the chart expects (65532, see charts/regie/values.yaml securityContext).
#
#   docker build -t regie:dev .        (or: podman build, buildah bud, kaniko)
#
# The build stage compiles with the lockfile (--locked), so the image holds exactly the
# dependency versions CI tested.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY crds crds
COPY operator operator
COPY e2e e2e
RUN cargo build --release --locked -p regie-operator --bin regie \
 && install -D -m 0755 target/release/regie /out/regie

# glibc and CA certificates, nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/regie /usr/local/bin/regie
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/regie"]
CMD ["run"]
