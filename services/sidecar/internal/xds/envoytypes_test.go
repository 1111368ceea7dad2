package xds

import (
	// Envoy's types, to build resources as a control plane does and to
	// check the subset against Envoy's descriptors.
	_ "github.com/switchyard-mesh/switchyard/services/sidecar/internal/xds/envoyapi"

	// The subset's packages for RLS, which only package proxy uses.
	_ "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/extensions/common/ratelimit/v3"
	_ "github.com/switchyard-mesh/switchyard/proto/switchyard/xdssubset/envoy/service/ratelimit/v3"
)
