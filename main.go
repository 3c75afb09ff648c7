package main

import (
	"os"

	"github.com/cas-ml/cas/cli"
)

func main() { os.Exit(cli.Main()) }
