package commands

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"crawlcache/store"
)

func dbCommand() *cli.Command {
	return &cli.Command{
		Name:  "db",
		Usage: "the embedded store: serve it for Compass, mongosh and other processes; check, recover and compact its files",
		Subcommands: append([]*cli.Command{
			{
				Name:  "serve",
				Usage: "run the embedded MongoDB-wire server in the foreground for Compass, mongosh and other crawlcache processes",
				Description: "Serves the data directory on a loopback address until Ctrl-C. While it runs, other crawlcache\n" +
					"commands on the same --data-dir connect to it instead of starting their own server.",
				Flags: []cli.Flag{
					&cli.StringFlag{
						Name:    "listen",
						Value:   "127.0.0.1:27017",
						Usage:   "loopback address to listen on (the embedded server has no authentication)",
						EnvVars: []string{"CRAWLCACHE_LISTEN"},
					},
					&cli.StringFlag{
						Name:    "data-dir",
						Value:   store.DefaultDataDir,
						Usage:   "directory of the embedded store",
						EnvVars: []string{"CRAWLCACHE_DATA_DIR"},
					},
				},
				Action: func(c *cli.Context) error {
					srv, err := store.StartServer(c.Context, store.ServerOptions{
						DataDir: c.String("data-dir"),
						Listen:  c.String("listen"),
						Command: "db serve",
					})
					if err != nil {
						return err
					}
					defer srv.Close()
					if err := srv.Upgrade(c.Context, migrations(), nil); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "crawlcache embedded store serving %s\n", c.String("data-dir"))
					fmt.Fprintf(c.App.Writer, "connection string: %s\n", srv.URI())
					fmt.Fprintf(c.App.Writer, "  mongosh %s\n", srv.URI())
					fmt.Fprintf(c.App.Writer, "  Compass: New connection -> %s\n", srv.URI())
					fmt.Fprintf(c.App.Writer, "  other crawlcache commands: --store %s (or the same --data-dir)\n", srv.URI())
					fmt.Fprintln(c.App.Writer, "press Ctrl-C to stop")
					select {
					case <-c.Context.Done():
						fmt.Fprintln(os.Stderr, "stopping embedded store")
					case <-srv.Done():
						return fmt.Errorf("embedded store stopped unexpectedly")
					}
					return nil
				},
			},
		}, dbMaintenanceCommands()...),
	}
}
