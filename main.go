// Command crawlcache is a batch web crawler whose HTTP responses live in
// MongoDB. main only wires the command line: a context cancelled by SIGINT or
// SIGTERM, the commands, and the exit code.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"crawlcache/commands"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := commands.Run(ctx, os.Args)
	stop()
	os.Exit(commands.ExitCode(err, func(msg string) { fmt.Fprintln(os.Stderr, "crawlcache:", msg) }))
}
