// Package deploy holds what runs customerbus outside `make run`: the
// compose file, the Kubernetes manifests, the NATS configuration and the
// values of NATS's Helm chart. Its tests check them offline, since neither
// docker nor a cluster is there when `make test` runs: the compose file as
// `docker compose config` loads it, every manifest strictly decoded into the
// Kubernetes API's types, and the rules each must keep (probes, resources,
// secrets, graceful termination); the Dockerfile at the root too.
package deploy
