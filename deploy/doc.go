// Package deploy checks Signalbox's deployment files without a network or
// containers: the Compose file loads with the Compose Spec loader that
// `docker compose` itself uses, and the Helm chart renders with `helm
// template` into manifests that decode strictly into the Kubernetes API
// types. It is a module of its own so that the main module's dependencies
// stay lean.
package deploy
