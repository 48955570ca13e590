// Package commands defines crawlcache's command line: one file per command
// group. Commands parse flags into plain Go values, open the store, call the
// library packages and print. They hold no crawling or caching logic.
package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"crawlcache/store"
)

// Version is the crawlcache release, printed by --version.
var Version = "0.1.0-dev"

// App returns the crawlcache command-line application.
func App() *cli.App {
	app := &cli.App{
		Name:    "crawlcache",
		Usage:   "a batch web crawler with a persistent HTTP response cache in MongoDB",
		Version: Version,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "log-level",
				Value:   "info",
				Usage:   "log level: debug, info, warn or error",
				EnvVars: []string{"CRAWLCACHE_LOG_LEVEL"},
			},
			&cli.StringFlag{
				Name:    "log-format",
				Value:   "text",
				Usage:   "log format on standard error: text (key=value) or json (one object per line, for log shippers)",
				EnvVars: []string{"CRAWLCACHE_LOG_FORMAT"},
			},
			&cli.StringFlag{
				Name:    "chromium",
				Usage:   "Chromium executable for jobs with a render section (default: chromium, chromium-browser or google-chrome on PATH)",
				EnvVars: []string{"CRAWLCACHE_CHROMIUM"},
			},
		},
		Before: setLogger,
		Commands: []*cli.Command{
			dbCommand(),
			siteCommand(),
			proxyCommand(),
			cacheCommand(),
			validateCommand(),
			extractCommand(),
			runCommand(),
			resumeCommand(),
			runsCommand(),
			scheduleCommand(),
			demoCommand(),
			workerCommand(),
			completionCommand(),
		},
		// Candidates for the completion scripts (`crawlcache completion`).
		EnableBashCompletion: true,
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	app.OnUsageError = usageError
	setUsageErrors(app.Commands)
	setLeafCompletion(app.Commands)
	return app
}

// setLogger installs the default slog logger on the app's standard error,
// as --log-level and --log-format ask.
func setLogger(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cli.Exit(fmt.Sprintf("--log-level %q: want debug, info, warn or error", c.String("log-level")), 2)
	}
	opts := &slog.HandlerOptions{Level: level}
	w := cmp.Or[io.Writer](c.App.ErrWriter, os.Stderr)
	switch f := strings.ToLower(strings.TrimSpace(c.String("log-format"))); f {
	case "text", "":
		slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(w, opts)))
	default:
		return cli.Exit(fmt.Sprintf("--log-format %q: want text or json", c.String("log-format")), 2)
	}
	return nil
}

// usageError turns a flag mistake into one line and exit status 2, instead
// of urfave/cli's full help text.
func usageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag --" + strings.TrimPrefix(name, "-")
	}
	path := ""
	if c.Command != nil && c.Command.Name != "" {
		path = commandPath(c)
	}
	if path == "" {
		return cli.Exit(fmt.Sprintf("%s (see `crawlcache --help`)", msg), 2)
	}
	return cli.Exit(fmt.Sprintf("%s: %s (see `crawlcache %s --help`)", path, msg, path), 2)
}

func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = usageError
		}
		setUsageErrors(c.Subcommands)
	}
}

// ExitCode maps the error a command returned to the process exit code and
// prints it with printf. A cli.ExitCoder keeps its code; other errors exit 1.
func ExitCode(err error, printf func(string)) int {
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := strings.TrimSpace(ec.Error()); msg != "" {
			printf(msg)
		}
		return ec.ExitCode()
	}
	printf(err.Error())
	return 1
}

// storeFlags are accepted by every command that touches the store. Their
// names and environment variables are a contract with users and scripts.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "store",
			Usage:   "MongoDB URI (mongodb:// or mongodb+srv://); empty runs the embedded store in --data-dir",
			EnvVars: []string{"CRAWLCACHE_STORE"},
		},
		&cli.StringFlag{
			Name:    "data-dir",
			Value:   store.DefaultDataDir,
			Usage:   "directory of the embedded store (used when --store is empty)",
			EnvVars: []string{"CRAWLCACHE_DATA_DIR"},
		},
	}
}

// readOnlyCommands only read the store: they open a data directory that
// cannot be written read-only, and refuse one that does not exist instead
// of creating an empty store.
var readOnlyCommands = map[string]bool{
	"cache stats": true, "cache ls": true, "cache show": true, "cache ttl show": true, "cache export": true,
	"runs ls": true, "runs show": true,
}

// openStore opens the store named by the command's store flags.
func openStore(c *cli.Context) (*store.Store, error) {
	return store.Open(c.Context, store.Options{
		URI:        c.String("store"),
		DataDir:    c.String("data-dir"),
		Command:    c.Command.FullName(),
		ReadOnly:   readOnlyCommands[commandPath(c)],
		Migrations: migrations(),
	})
}

// withStore opens the store, runs fn and closes the store. An error that
// says the embedded store's files are damaged comes back naming the file
// and the way out (store.DiagnoseCorrupt), checked once the store is closed.
func withStore(c *cli.Context, fn func(ctx context.Context, s *store.Store) error) error {
	dir := ""
	if c.String("store") == "" {
		dir = c.String("data-dir")
	}
	s, err := openStore(c)
	if err != nil {
		return store.DiagnoseCorrupt(context.WithoutCancel(c.Context), dir, err)
	}
	err = fn(c.Context, s)
	s.Close(context.Background())
	return store.DiagnoseCorrupt(context.WithoutCancel(c.Context), dir, err)
}
