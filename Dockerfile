# One image for the api and the embedder job. Build with a CUDA torch for the GPU embedder:
#   docker build --build-arg TORCH_SPEC="torch" --build-arg EXTRAS="gpu,ray" -t galsearch .
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ARG EXTRAS=""
WORKDIR /srv/galsearch
COPY pyproject.toml README.md ./
COPY galsearch galsearch
COPY survey survey
COPY embedder embedder
COPY discovery discovery
COPY index_builder index_builder
COPY app app
COPY frontend frontend
RUN pip install --no-cache-dir "${TORCH_SPEC}" && pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}"
ENV GALSEARCH_WORKDIR=/data/work
EXPOSE 8000
CMD ["galsearch", "serve", "--host", "0.0.0.0", "--port", "8000"]
