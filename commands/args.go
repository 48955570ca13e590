package commands

import (
	"context"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Run runs the crawlcache application with args (args[0] is the program
// name). Unlike App().RunContext, flags may follow positional arguments
// ("crawlcache run configs/x.yaml --json"), as the README writes them.
func Run(ctx context.Context, args []string) error {
	app := App()
	return app.RunContext(ctx, Intersperse(app, args))
}

// Intersperse returns args with the flags of the innermost command moved
// before its positional arguments: urfave/cli v2 stops parsing flags at the
// first positional argument. Global flags (--log-level, --log-format)
// written after a command word move before the command, so
// "crawlcache run --log-level debug x.yaml" works. Everything after "--"
// stays positional. Unknown flags are moved too, so the parser reports them.
func Intersperse(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == completionFlag {
		return args // a completion request must stay as the shell wrote it
	}
	var global, out []string
	flags, commands := app.Flags, app.Commands
	// take appends flag a (and its value) to dst, or to global when a is a
	// global flag that the current command does not define itself.
	i := 1
	take := func(dst *[]string, a string) {
		if !defines(flags, a) && defines(app.Flags, a) {
			dst = &global
		}
		*dst = append(*dst, a)
		if takesValue(flags, a) || (!defines(flags, a) && takesValue(app.Flags, a)) {
			if i+1 < len(args) {
				*dst = append(*dst, args[i+1])
				i++
			}
		}
	}
	// The command path, with the flags written between its words.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			break
		}
		if isFlag(a) {
			take(&out, a)
			i++
			continue
		}
		cmd := findCommand(commands, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		flags, commands = cmd.Flags, cmd.Subcommands
		i++
	}
	// The innermost command's arguments: flags first.
	var moved, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if !isFlag(a) {
			positional = append(positional, a)
			continue
		}
		take(&moved, a)
	}
	out = append(append(append([]string{args[0]}, global...), out...), moved...)
	if slices.Contains(moved, "--help") || slices.Contains(moved, "-h") {
		return out // help takes no arguments ("run x.yaml --help")
	}
	return append(out, positional...)
}

// defines reports whether flag a (as written, "-x", "--name" or
// "--name=v") is one of flags.
func defines(flags []cli.Flag, a string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// completionFlag ends the command line of a completion request: urfave/cli
// then prints candidates instead of running the command.
const completionFlag = "--generate-bash-completion"

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// takesValue reports whether flag a (as written, "-x", "--name" or
// "--name=v") consumes the next argument.
func takesValue(flags []cli.Flag, a string) bool {
	name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
	if hasValue {
		return false
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if tv, ok := f.(interface{ TakesValue() bool }); ok {
			return tv.TakesValue()
		}
		return true
	}
	return false // unknown (or help): let the parser complain
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
