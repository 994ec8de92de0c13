# shellcheck shell=bash
# Sourced by infra/local/install.sh (all): a registry that implements the OCI referrers API, for the signing tests
# (the main test registry, distribution 2.8, answers 404 there and needs the referrers tag scheme).
# zot was the first choice; the Go module proxy this workplace reaches refuses zotregistry.dev/zot (host not
# permitted), and github.com/project-zot/zot only has v1.4.3, which predates the OCI 1.1 referrers API. olareg
# (github.com/olareg/olareg, by regclient's author) implements OCI distribution 1.1 including referrers.
IBS_OLAREG_VERSION=v0.1.2
go_tool olareg github.com/olareg/olareg github.com/olareg/olareg/cmd/olareg "$IBS_OLAREG_VERSION"
