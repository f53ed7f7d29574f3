// Command agentsecrets lets AI agents use API credentials without ever
// holding them. All behaviour lives in package commands.
package main

import (
	"os"

	"github.com/agentsecrets/agentsecrets/commands"
)

func main() { os.Exit(commands.Main(os.Args[1:], commands.SystemEnv())) }
