package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cli"
	"github.com/cas-ml/cas/clock"
)

// testFactory is a Factory with buffers for streams, no environment and
// dir as the working directory.
func testFactory(dir string) (*cli.Factory, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &cli.Factory{
		IO:      &cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		Clock:   clock.NewFake(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
		Getenv:  func(string) string { return "" },
		WorkDir: func() (string, error) { return dir, nil },
	}, &out, &errOut
}

func allCommands(c *cobra.Command) []*cobra.Command {
	cmds := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		cmds = append(cmds, allCommands(sub)...)
	}
	return cmds
}

// Every command shows how it is used: an Example whose lines run that
// command.
func TestEveryCommandHasExample(t *testing.T) {
	f, _, _ := testFactory(t.TempDir())
	for _, c := range allCommands(cli.NewRootCmd(f)) {
		if !c.HasParent() {
			continue
		}
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Example == "" {
				t.Fatalf("%s has no Example", c.CommandPath())
			}
			for _, line := range strings.Split(c.Example, "\n") {
				if !strings.HasPrefix(line, "  "+c.CommandPath()) {
					t.Errorf("example line %q: want it to start with %q", line, "  "+c.CommandPath())
				}
			}
		})
	}
}

// Every command that returns data has --json; cat returns file bytes.
func TestDataCommandsHaveJSON(t *testing.T) {
	f, _, _ := testFactory(t.TempDir())
	for _, c := range allCommands(cli.NewRootCmd(f)) {
		if !c.HasParent() || c.HasSubCommands() || c.Name() == "cat" || c.Name() == "completion" { // bytes, a script
			continue
		}
		if c.Flags().Lookup("json") == nil {
			t.Errorf("%s has no --json flag", c.CommandPath())
		}
	}
}

// Run maps errors to exit codes and prints one line, plus a hint where it
// helps, on the error stream.
func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no store", []string{"refs"}, 1,
			"cas: no cas store here or in any parent directory\nhint: run `cas init` to create one, or set CAS_DIR\n"},
		{"unknown command", []string{"frob"}, 2,
			"cas: unknown command \"frob\" for \"cas\"\nhint: `cas --help` lists the commands\n"},
		{"unknown subcommand", []string{"index", "frob"}, 2,
			"cas: unknown command \"frob\" for \"cas index\"\nhint: `cas index --help` lists the commands\n"},
		{"too few arguments", []string{"restore", "x"}, 2,
			"cas: restore takes two arguments, REF[:path] and DEST; got one\nhint: see `cas restore --help`\n"},
		{"too many arguments", []string{"init", "x"}, 2,
			"cas: init takes no arguments; got \"x\"\nhint: see `cas init --help`\n"},
		{"too many of one kind", []string{"verify", "a", "b"}, 2,
			"cas: verify takes at most one REF; got two\nhint: see `cas verify --help`\n"},
		{"a mistyped subcommand", []string{"refs", "rn"}, 2,
			"cas: unknown command \"rn\" for \"cas refs\"\nhint: did you mean `cas refs rm`?\n"},
		{"not an integer", []string{"log", "-n", "abc"}, 2,
			"cas: --max-count: not an integer: \"abc\"\nhint: see `cas log --help`\n"},
		{"not a duration", []string{"gc", "--grace", "soon"}, 2,
			"cas: --grace: not a duration (like 90s, 15m or 2h): \"soon\"\nhint: see `cas gc --help`\n"},
		{"out of range", []string{"log", "-n", "99999999999999999999"}, 2,
			"cas: --max-count: out of range: \"99999999999999999999\"\nhint: see `cas log --help`\n"},
		{"unknown flag", []string{"ls", "--bogus", "x"}, 2,
			"cas: unknown flag: --bogus\nhint: see `cas ls --help`\n"},
		{"bad chunk size", []string{"init", "--chunk-avg", "3000"}, 2,
			"cas: --chunk-avg: chunk average 3000: want a power of two from 4KiB to 16MiB\n"},
		{"bad ref name", []string{"push", ".", "--name", "a b"}, 2,
			"cas: --name \"a b\": invalid ref name: use letters, digits and . _ - / (no leading dot, no .., at most 200 characters)\n"},
		{"help", []string{"--help"}, 0, ""},
		{"bare group command", []string{"index"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, errOut := testFactory(t.TempDir())
			if got := cli.Run(context.Background(), f, tt.args); got != tt.wantCode {
				t.Errorf("cas %s: got exit code %d, want %d (stderr %q)", strings.Join(tt.args, " "), got, tt.wantCode, errOut)
			}
			if got := errOut.String(); got != tt.wantStderr {
				t.Errorf("cas %s: got stderr %q, want %q", strings.Join(tt.args, " "), got, tt.wantStderr)
			}
		})
	}
}
