# One image for the api and the worker. The api never imports torch; the worker uses CUDA when
# the container is given a GPU (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY plugin ./plugin
RUN pip install ".[offline]"
EXPOSE 9090
CMD ["lsclip", "api", "--host", "0.0.0.0", "--port", "9090"]
