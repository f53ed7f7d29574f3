// Command agentsecrets-server is the zero-knowledge sync server: the
// HTTP API of internal/server over SQLite or PostgreSQL. Its flags are
// `agentsecrets server`'s, which hands over to it:
//
//	agentsecrets-server --listen 127.0.0.1:8787 --db sqlite:/var/lib/agentsecrets/server.db
//
// It is an executable of its own so that agentsecrets, started for every
// agent's call, carries none of the database drivers.
package main

import (
	"os"

	"github.com/agentsecrets/agentsecrets/commands"
)

func main() {
	env := commands.SystemEnv()
	env.Serve = serve
	os.Exit(commands.ServerMain(os.Args[1:], env))
}
