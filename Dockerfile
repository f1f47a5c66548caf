# syntax=docker/dockerfile:1
# The controller image. Built by CI systems that have an engine; not needed for `make test`.
#
# The base is an exact Python patch release on an exact Debian release: the Python the test suite
# runs with (3.11.7). A tag can be pushed again; where a registry is reachable, pin its digest too
# (FROM python:3.11.7-slim-bookworm@sha256:...), e.g. with --build-arg BASE_IMAGE=...@sha256:...
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# The lock of every runtime dependency, transitive ones included (tests/test_image_constraints.py
# checks it is complete): installed with --no-deps, so pip resolves nothing and adds nothing.
COPY image-constraints.txt ./
RUN pip install --no-cache-dir --no-deps --prefix=/install -r image-constraints.txt
COPY pyproject.toml README.md ./
COPY canary ./canary
RUN pip install --no-cache-dir --no-deps --prefix=/install .

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
# Stamped by the build (docker build --build-arg VERSION=... REVISION=$(git rev-parse HEAD) CREATED=...).
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="canary" \
      org.opencontainers.image.description="Progressive delivery controller for Kubernetes: SMI TrafficSplit and Gateway API canaries with metric analysis" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=build /install /usr/local
# Fails the build if the lock is inconsistent (a pin outside what another package requires).
RUN python -m pip check
# Non-root, read-only friendly: the controller keeps no state on disk (all of it is in status).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["canary"]
CMD ["run"]
