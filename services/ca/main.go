// Command ca is Switchyard's certificate authority: it mints short-lived
// X509-SVIDs from CSRs and serves the trust bundle. See README.md.
package main

import (
	"github.com/switchyard-mesh/switchyard/services/ca/internal/app"
	"github.com/switchyard-mesh/switchyard/services/kit/service"
)

func main() {
	service.Main("ca", app.DefaultConfig(), (*app.Config).Validate, app.Run)
}
