# One image for every role of Trustee: the kts binary (server, operator,
# admin tools, backups) and PostgreSQL 15 for the database sidecar that
# `kts db` runs, and for the operator (`kts operator`), whose servers run
# this same image by default. Build: docker build -t trustee/kts .
# Building needs a container engine (Docker, Podman, BuildKit).

# --- build -----------------------------------------------------------------
FROM golang:1.26.11-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# cgo stays on: PKCS#11 (HSM) support loads the module with dlopen.
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/kts . \
 && for link in keytrustee-orgtool ktadmin ktbackup.sh; do ln -s kts /out/$link; done

# --- run -------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-client-15 gnupg ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# An unprivileged account owns the state and runs both the server and
# PostgreSQL (which refuses root); its home holds the GnuPG keyring that
# backups look recipients up in.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/keytrustee --create-home \
      --shell /usr/sbin/nologin keytrustee \
 && install -d -o keytrustee -g keytrustee -m 0700 /var/lib/keytrustee/.keytrustee
COPY --from=build /out/ /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    KTS_CONFDIR=/var/lib/keytrustee/.keytrustee
USER 10001:10001
WORKDIR /var/lib/keytrustee
VOLUME ["/var/lib/keytrustee"]
EXPOSE 11371 11373 11381 5432
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/kts"]
CMD ["server"]
