// Command cas is a content-addressed artifact store for reproducible ML
// research. See the README and docs/ for a tour.
package main

import (
	"os"

	"github.com/cas-ml/cas/cli"
)

func main() { os.Exit(cli.Main()) }
