# PAR's container images: a build stage compiles with the project's own install script; the
# runtime stages on debian:bookworm-slim carry only what pard needs to run.
#   docker build -t par .                    default: with Python, for Pixell Python packages
#   docker build --target slim -t par:slim . native and exec agents only
# No `# syntax=` line, heredocs or digest pins: the image must build with the legacy builder
# from a locally imported base (tests/e2e does exactly that).

FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
# The install script alone first, so its slow apt layer survives edits to the sources.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN bash /src/scripts/install-deps.sh --build-only && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY . /src
# Tests are CI's job (scripts/test.sh), not the image's; --strip drops the debug info.
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
        -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --strip \
 && rm -rf /out/usr/local/include \
 && install -d /out/usr/local/share/par/examples \
 && cp /build/examples/echo-agent.apkg /build/examples/slow-agent.apkg \
       /out/usr/local/share/par/examples/


FROM debian:bookworm-slim AS slim
# Runtime halves of the -dev packages the build links against; ca-certificates for https
# package URLs and the AWS endpoints; man-db (7 MB) so `man parctl` works in an ECS Exec
# session. `apt-get clean` because a base made by mmdebstrap has no docker-clean hook:
# without it the .debs stay in the layer.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libarchive13 libcjson1 libcurl4 libcyaml1 libgrpc29 libmicrohttpd12 \
        libprotobuf-c1 libreadline8 libssl3 libyaml-0-2 man-db \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# 10001:10001 is the uid the deploy kit (ECS task definition, Kubernetes securityContext,
# EFS access point) expects. The cache and the admin socket's directory are the user's, so
# pard runs without root; with --read-only they are where the tmpfs/volumes go.
RUN groupadd --system --gid 10001 par \
 && useradd --system --uid 10001 --gid par --home-dir /home/par --create-home \
        --shell /bin/bash par \
 && install -d -o par -g par -m 0750 /var/cache/par \
 && install -d -o par -g par -m 0755 /run/par
COPY --from=build /out/usr/local/ /usr/local/
# A missing runtime library fails the build here, not the first boot. The bash completion is
# sourced for interactive shells (ECS Exec's `bash`): it is self-contained, so the
# bash-completion package is not needed.
RUN ldconfig \
 && ! ldd /usr/local/bin/pard /usr/local/bin/parctl | grep 'not found' \
 && echo '. /usr/local/share/bash-completion/completions/parctl' >> /etc/bash.bashrc
ENV PAR_CACHE_DIR=/var/cache/par
USER 10001:10001
EXPOSE 8080 50051 3000
STOPSIGNAL SIGTERM
# pard's own probe (no curl in the image): 0 iff /health is 200, i.e. READY.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 CMD ["pard", "--probe"]
ENTRYPOINT ["pard"]


# The default target, last so a plain `docker build` makes it: Python 3.11 with FastAPI and
# uvicorn from Debian, which agents' venvs see through PAR_PYTHON_SYSTEM_SITE_PACKAGES;
# python3-venv gives venvs their pip for packages with a requirements.txt.
FROM slim AS python
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv python3-fastapi python3-uvicorn \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/examples/python-agent.apkg /usr/local/share/par/examples/
ENV PAR_PYTHON_SYSTEM_SITE_PACKAGES=1
USER 10001:10001
