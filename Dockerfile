# cartload-uploader: `docker run IMAGE upload_aws ...` / `docker run IMAGE upload_zenodo ...`
# The base is a build argument so that a local base (see tests/container/check.sh) can stand in
# for the official image where no registry is reachable. The builder and the final stage must use
# the same base: the virtualenv links to its Python.
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.txt ./
RUN python3 -m venv /opt/cartload-uploader \
 && /opt/cartload-uploader/bin/pip install --no-deps -r requirements.txt
COPY pyproject.toml README.md entrypoint.py ./
COPY uploader ./uploader
# The command is entrypoint.py, run isolated (-I): a host's PYTHONPATH, PYTHONHOME, PYTHONUSERBASE or
# virtualenv (Apptainer passes the host environment in) cannot change which code runs; AWS_* still pass.
# (-u: -I ignores PYTHONUNBUFFERED too.) The bytecode is checked by hash, not by the source's mtime,
# which copying between stages may shift: stale .pyc files were recompiled on every run (written into
# the image by root, in memory by everyone else).
RUN /opt/cartload-uploader/bin/pip install --no-deps . \
 && sed '1s|^#!.*|#!/opt/cartload-uploader/bin/python -Iu|' entrypoint.py >/opt/cartload-uploader/bin/cartload-uploader \
 && chmod 755 /opt/cartload-uploader/bin/cartload-uploader \
 && /opt/cartload-uploader/bin/pip install --quiet --target /opt/test-tools pytest==9.2.0 ftfy==6.3.1 "bleach[css]==6.4.0" \
 && /opt/cartload-uploader/bin/pip uninstall --yes pip \
 && /opt/cartload-uploader/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/cartload-uploader

FROM ${BASE_IMAGE} AS runtime
ARG VERSION=unknown
LABEL org.opencontainers.image.title="cartload-uploader" \
      org.opencontainers.image.description="Publish cartloader output (PMTiles, factor tables, catalog.yaml) to S3 or Zenodo" \
      org.opencontainers.image.source="https://github.com/cartload/cartload-uploader" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
# No AWS_*, endpoints or HOME here: under Apptainer an image ENV would override the host's. For any uid
# (`docker run --user`: HOME=/) the command itself sets HOME to /home/uploader (entrypoint.py).
ENV PATH=/opt/cartload-uploader/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1
COPY --from=builder /opt/cartload-uploader /opt/cartload-uploader
# The home is traversable by every uid, so that ~/.aws and ~/.cache mounted under it can be read.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/uploader --shell /usr/sbin/nologin uploader \
 && chmod 755 /home/uploader
USER 10001:10001
WORKDIR /home/uploader
ENTRYPOINT ["cartload-uploader"]
CMD ["--help"]

# `--target test` (docker-compose.test.yml): the runtime image plus pytest, the mock Zenodo's ftfy and bleach
# (it stores metadata as Zenodo does) and the tests, never shipped.
FROM runtime AS test
COPY --from=builder /opt/test-tools /opt/test-tools
COPY --chown=10001:10001 pyproject.toml entrypoint.py /home/uploader/src/
COPY --chown=10001:10001 tests /home/uploader/src/tests
COPY --chown=10001:10001 examples /home/uploader/src/examples
ENV PYTHONPATH=/opt/test-tools
WORKDIR /home/uploader/src
ENTRYPOINT ["python", "-m", "pytest", "-p", "no:cacheprovider"]
CMD ["-m", "e2e and not lock_faults", "tests"]

# The default target: the runtime image, as it is.
FROM runtime
