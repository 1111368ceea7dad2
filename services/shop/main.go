// Command shop runs one app of the demo shop the mesh carries: frontend,
// users, orders or billing, chosen with -app. See README.md.
package main

import (
	"github.com/switchyard-mesh/switchyard/services/kit/service"
	"github.com/switchyard-mesh/switchyard/services/shop/internal/app"
)

func main() {
	service.Main("shop", app.DefaultConfig(), (*app.Config).Validate, app.Run)
}
