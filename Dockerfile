# ClusterScope dashboard, CPU only.
#   docker build -t clusterscope .
#   docker run -p 8501:8501 -v clusterscope-store:/data/store clusterscope
# On first start with an empty store the demo runs are built in the background (docs/docker.md).
# Checked statically by tests/test_dockerfile.py (hadolint plus the pins below against pyproject.toml).

# ---- builder: a virtual environment with CPU-only torch and the project -------------------------
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch and torchvision from the PyTorch CPU index: no CUDA libraries in the image (gigabytes smaller).
# These pins must equal pyproject.toml's; `pip install .` below then finds them already satisfied.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu \
        torch==2.14.1 torchvision==0.29.1

WORKDIR /src
COPY pyproject.toml ./
COPY backend ./backend
COPY app ./app
# A non-editable install: `app` lands in site-packages next to `backend`, where `clusterscope app`
# looks for app/main.py. Fail the build here, not at run time, if the wheel misses it or torch has CUDA.
RUN pip install --no-cache-dir . \
 && python -c "import pathlib, backend, torch; \
app = pathlib.Path(backend.__file__).resolve().parent.parent / 'app'; \
missing = [p for p in ('main.py', 'views/runs.py') if not (app / p).is_file()]; \
assert not missing, f'not installed: {missing}'; \
assert torch.version.cuda is None, f'CUDA torch {torch.__version__}'"

# ---- runtime ------------------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="ClusterScope" \
      org.opencontainers.image.description="See how a network organises its data, layer by layer and epoch by epoch." \
      org.opencontainers.image.licenses="MIT"

# NUMBA_CACHE_DIR: umap/hdbscan cache their numba JIT code; the venv is read-only for the app user.
# The container serves on every interface of its own network (Docker publishes the port), so the
# features that run code or read the server's folders are off, explicitly (docs/security.md).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/clusterscope \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    CLUSTERSCOPE_STORE=/data/store \
    CLUSTERSCOPE_DEMO=auto \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none \
    CLUSTERSCOPE_ALLOW_TORCHSCRIPT=0 \
    CLUSTERSCOPE_ALLOW_SERVER_PATHS=0 \
    STREAMLIT_THEME_BASE=light

# The store folder exists and belongs to the app user before VOLUME, so a new named volume is
# created writable for it.
RUN groupadd --system --gid 10001 clusterscope \
 && useradd --system --uid 10001 --gid clusterscope --home-dir /home/clusterscope --create-home \
        --shell /usr/sbin/nologin clusterscope \
 && mkdir -p /data/store \
 && chown clusterscope:clusterscope /data/store

COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/clusterscope-entrypoint

# Numeric, so that Kubernetes' runAsNonRoot can verify it (10001 is the clusterscope user above).
USER 10001:10001
WORKDIR /home/clusterscope

VOLUME ["/data/store"]
EXPOSE 8501

# Streamlit's own health endpoint, fetched with python's urllib (no curl in the image), ignoring any
# HTTP(S)_PROXY. Follows STREAMLIT_SERVER_PORT and STREAMLIT_SERVER_BASE_URL_PATH (not --server.port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; base = os.environ.get('STREAMLIT_SERVER_BASE_URL_PATH', '').strip('/'); u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/%s_stcore/health' % (os.environ.get('STREAMLIT_SERVER_PORT') or '8501', base + '/' if base else ''), timeout=4)"]

# No arguments (or only options, e.g. `--server.maxUploadSize 500`): build the demo if the store
# is empty, then serve the dashboard. Any other command runs as is, e.g. `clusterscope runs`.
ENTRYPOINT ["/usr/local/bin/clusterscope-entrypoint"]
