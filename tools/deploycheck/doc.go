// Package deploycheck verifies the deployment artifacts statically: the helm chart renders,
// every object decodes strictly into its Kubernetes API type and follows the project's rules,
// and docker-compose.yml loads with the compose-spec loader. One test runs the network lock
// the deployment scripts share (scripts/netlock.sh) on a lock file of its own.
package deploycheck
