# The controller image. Built by CI systems that have an engine; not needed for `make test`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md image-constraints.txt ./
COPY canary ./canary
# Pinned: the image runs the versions the test suite ran with, not whatever is newest that day.
RUN pip install --no-cache-dir --prefix=/install -c image-constraints.txt .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# Non-root, read-only friendly: the controller keeps no state on disk (all of it is in status).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["canary"]
CMD ["run"]
