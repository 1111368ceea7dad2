// Package contract checks the configuration that lives beside the code —
// Prometheus scrape config and rules, the compose files, Grafana
// provisioning and dashboards — against itself and against the live /metrics
// of the real binaries, so a renamed metric breaks the build instead of a
// dashboard.
package contract
