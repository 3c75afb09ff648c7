package cli

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/buildinfo"
)

type versionOptions struct {
	IO   *IOStreams
	JSON bool
}

func newCmdVersion(f *Factory) *cobra.Command {
	opts := &versionOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print which cas this is",
		Long: `Print the version of cas: a release's version, or the git commit it was
built from (+dirty for uncommitted changes). Every manifest records the
cas that wrote it in its "tool" field, the same text.`,
		Example: "  cas version\n  cas version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return versionRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the version as JSON")
	return cmd
}

func versionRun(_ context.Context, opts *versionOptions) error {
	if opts.JSON {
		return writeJSON(opts.IO.Out, struct {
			Version string `json:"version"`
			Go      string `json:"go"`
			OS      string `json:"os"`
			Arch    string `json:"arch"`
		}{buildinfo.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH})
	}
	fmt.Fprintln(opts.IO.Out, versionLine())
	return nil
}

// versionLine is what `cas version` and `cas --version` print.
func versionLine() string {
	return fmt.Sprintf("%s (%s, %s/%s)", buildinfo.Tool(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
