// Command registry is Switchyard's Raft-replicated service catalog and
// config store. See README.md.
package main

import (
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/registry/internal/server"
)

func main() {
	service.Main("registry", server.DefaultConfig(), (*server.Config).Validate, server.Run)
}
