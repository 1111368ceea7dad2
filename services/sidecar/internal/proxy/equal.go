package proxy

import (
	"reflect"
	"slices"

	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds"
)

func equalClusterConfig(a, b xds.ClusterConfig) bool { return reflect.DeepEqual(a, b) }

func endpointsEqual(a, b xds.Endpoints) bool {
	return a.ClusterName == b.ClusterName && a.Overprovisioning == b.Overprovisioning && slices.Equal(a.Hosts, b.Hosts)
}
