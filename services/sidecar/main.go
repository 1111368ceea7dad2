// Command sidecar is Switchyard's data-plane proxy beside each workload,
// configured only by xDS from the control plane. See README.md.
package main

import (
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/sidecar/internal/app"
)

func main() {
	service.Main("sidecar", app.DefaultConfig(), (*app.Config).Validate, app.Run)
}
