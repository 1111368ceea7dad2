// Command controlplane compiles the registry's catalog and config documents
// into Envoy v3 xDS resources and streams them to every proxy over ADS. See
// README.md.
package main

import (
	"github.com/switchyard-mesh/switchyard/services/controlplane/internal/app"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

func main() {
	service.Main("controlplane", app.DefaultConfig(), (*app.Config).Validate, app.Run)
}
