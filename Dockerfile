# stream-scorer's image: the worker (and the CLI) on a slim Python runtime.
#
#   docker build -t stream-scorer .
#   docker run --network host -e SCORER_API_TOKEN=... stream-scorer
#
# BASE is any image with Python 3.11+ and its venv module on Debian (the
# official python:3.11-slim by default; the tests build from a local Debian
# made with debootstrap, since registries are out of reach there). The build
# stage compiles the scoring engine with mypyc and turns the package and its
# dependencies into wheels; the runtime stage installs only those wheels, with
# no compiler, and runs as an unprivileged user with nothing to write outside
# /tmp (Faust's data folder), so the root filesystem can be read-only.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# A C compiler for mypyc, and Python's headers where the base's Python is Debian's.
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
    && { [ -x /usr/local/bin/python3 ] || apt-get install -y -qq --no-install-recommends python3-dev; } \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /build/venv \
    && /build/venv/bin/pip install -q --disable-pip-version-check "setuptools>=69" wheel \
        "mypy>=1.11" types-PyYAML
WORKDIR /build/src
COPY pyproject.toml setup.py README.md ./
COPY stream_scorer ./stream_scorer
# Wheels of the dependencies first (mypyc type-checks the engine against them),
# then the package, compiled.
RUN /build/venv/bin/pip wheel -q --disable-pip-version-check --wheel-dir /build/wheels . \
    && rm /build/wheels/stream_scorer-*.whl \
    && /build/venv/bin/pip install -q --disable-pip-version-check --no-index \
        --find-links /build/wheels /build/wheels/*.whl \
    && SCORER_MYPYC=1 /build/venv/bin/pip wheel -q --disable-pip-version-check \
        --no-build-isolation --no-deps --wheel-dir /build/wheels . \
    && /build/venv/bin/python -c "import pathlib, sys, zipfile; \
wheel = next(pathlib.Path('/build/wheels').glob('stream_scorer-*.whl')); \
names = zipfile.ZipFile(wheel).namelist(); \
sys.exit(0 if any(n.endswith('.so') for n in names) and 'stream_scorer/_native.json' in names \
    else wheel.name + ': the scoring engine was not compiled')"

FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/stream-scorer/bin:$PATH \
    SCORER_MODEL_PATH=/etc/stream-scorer/scoring.yaml \
    SCORER_WEB_HOST=0.0.0.0 \
    SCORER_WEB_PORT=6066
RUN --mount=type=bind,from=build,source=/build/wheels,target=/wheels \
    python3 -m venv /opt/stream-scorer \
    && /opt/stream-scorer/bin/pip install -q --disable-pip-version-check --no-cache-dir \
        --no-index --find-links /wheels stream-scorer \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home scorer
# The default model; mount another over it, or point SCORER_MODEL_PATH elsewhere.
COPY config/scoring.yaml /etc/stream-scorer/scoring.yaml
USER 10001:10001
WORKDIR /tmp
EXPOSE 6066
# /livez needs no token. 127.0.0.1 reaches the default 0.0.0.0 bind.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('SCORER_WEB_PORT', '6066'), timeout=4)"]
ENTRYPOINT ["stream-scorer"]
CMD ["worker"]
