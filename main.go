// Command crawlcache is a batch web crawler whose HTTP responses live in
// MongoDB. main only wires the command line: a context cancelled by SIGINT or
// SIGTERM (a second one stops at once), the commands, and the exit code.
package main

import (
	"context"
	"fmt"
	"os"

	"crawlcache/commands"
)

func main() {
	ctx, stop := commands.SignalContext(context.Background(), os.Exit)
	err := commands.Run(ctx, os.Args)
	stop()
	os.Exit(commands.ExitCode(err, func(msg string) { fmt.Fprintln(os.Stderr, "crawlcache:", msg) }))
}
