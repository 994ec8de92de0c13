# Sourced by infra/local/start.sh: the Azure Blob and GCS emulators the storage contract suite (test/storage/) runs
# against, beside MinIO. Uses start_process, log and $IBS_RUN from start.sh; running ones are left alone.
# Fixed loopback ports, which test/storage reads (override with AZURITE_BLOB_URL / FAKE_GCS_URL there).

# Any HTTP answer will do: both emulators refuse anonymous requests to / with an error status.
ibs_http_answers() { curl -s -o /dev/null --max-time 2 "$1"; }

start_azurite() {
  mkdir -p "$IBS_RUN/azurite"
  # --skipApiVersionCheck: @azure/storage-blob may speak a newer x-ms-version than the pinned Azurite knows.
  start_process azurite "ibs_http_answers http://127.0.0.1:10000/" \
    "$IBS_CACHE/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort 10000 \
      --location "$IBS_RUN/azurite" --skipApiVersionCheck --silent
}

start_fake_gcs() {
  mkdir -p "$IBS_RUN/fake-gcs"
  start_process fake-gcs-server "http_ok http://127.0.0.1:4443/storage/v1/b" \
    "$IBS_BIN/fake-gcs-server" -scheme http -host 127.0.0.1 -port 4443 -backend filesystem \
      -filesystem-root "$IBS_RUN/fake-gcs" -public-host 127.0.0.1:4443 -external-url http://127.0.0.1:4443 -log-level warn
}

start_azurite
start_fake_gcs
