package commands

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts ask the program itself for candidates
// (urfave/cli's --generate-bash-completion), so they stay right when
// commands and flags change; fish gets urfave/cli's generated script.
var (
	//go:embed completion/crawlcache.bash
	bashCompletion string
	//go:embed completion/crawlcache.zsh
	zshCompletion string
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Install (see the README for where each shell looks):\n" +
			"  bash:  source <(crawlcache completion bash)        # in ~/.bashrc\n" +
			"  zsh:   source <(crawlcache completion zsh)         # in ~/.zshrc, after compinit\n" +
			"  fish:  crawlcache completion fish > ~/.config/fish/completions/crawlcache.fish",
		Action: runCompletion,
	}
}

func runCompletion(c *cli.Context) error {
	shell, err := oneArg(c, "bash|zsh|fish")
	if err != nil {
		return err
	}
	return writeCompletion(c.App, c.App.Writer, shell)
}

// writeCompletion writes the completion script of shell to w.
func writeCompletion(app *cli.App, w io.Writer, shell string) error {
	var script string
	switch shell {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return fmt.Errorf("completion fish: %w", err)
		}
		script = s
	default:
		return cli.Exit(fmt.Sprintf("completion: unknown shell %q: want bash, zsh or fish", shell), 2)
	}
	_, err := io.WriteString(w, script)
	return err
}

// setLeafCompletion makes commands without subcommands offer their flags
// after a "-" and nothing otherwise, so the shell completes file names
// (job files, directories) instead of offering "help".
func setLeafCompletion(cmds []*cli.Command) {
	for _, c := range cmds {
		if len(c.Subcommands) > 0 {
			setLeafCompletion(c.Subcommands)
			continue
		}
		if c.BashComplete == nil {
			flags := cli.DefaultCompleteWithFlags(c)
			c.BashComplete = func(ctx *cli.Context) {
				if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
					flags(ctx)
				}
			}
		}
	}
}
