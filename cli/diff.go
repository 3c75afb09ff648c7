package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/manifest/ckpt"
	"github.com/cas-ml/cas/remote"
)

type diffOptions struct {
	IO       *IOStreams
	Factory  *Factory
	A, B     string
	Excludes []string
	JSON     bool
	ExitCode bool
	// differ is set by whichever comparison ran when it found differences.
	differ bool
}

func newCmdDiff(f *Factory) *cobra.Command {
	opts := &diffOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "diff REF REF|PATH",
		Short: "Show which files differ between two stored trees, or a tree and a path",
		Long: `Compare two stored trees, or a stored tree with a file or directory on disk,
and list the files added (+), removed (-) and modified (~), with sizes, as
git diff --stat does. The second argument is taken as a PATH when it
exists on disk, else as a REF; a name that is both is refused: write
./NAME or NAME/ for the path, NAME: for the ref. Exit status 0 either way, unless
--exit-code: then 1 when anything differs, as git diff --exit-code.

When both name run manifests, show what differs between the runs: inputs,
commit and patch, packages, environment, variables, seeds, command,
outputs, and metrics with their deltas. When both are checkpoints (files
on disk or stored), show which tensors changed, were added or removed, by
tensor digest, and whether each RNG state is equal.`,
		Example: "  cas diff train-v1 train-v2\n  cas diff train data/\n  cas diff runs/seed1 runs/seed2\n  cas diff ckpt/epoch1.pt ckpt/epoch2.pt",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.A, opts.B = args[0], args[1]
			return diffRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Excludes, "exclude", "e", nil, "leave out paths on disk matching `PATTERN`, as push does")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print changes as JSON")
	cmd.Flags().BoolVar(&opts.ExitCode, "exit-code", false, "exit with status 1 when anything differs")
	return cmd
}

func diffRun(ctx context.Context, opts *diffOptions) error {
	err := diffAny(ctx, opts)
	if err != nil {
		return err
	}
	if opts.ExitCode && opts.differ {
		return exitStatus(exitError)
	}
	return nil
}

func diffAny(ctx context.Context, opts *diffOptions) error {
	// Two checkpoint files on disk need no store.
	if isFile(opts.A) && isFile(opts.B) {
		if done, err := diffCheckpoints(ctx, opts); done || err != nil {
			return err
		}
	}
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	// What the local store lacks may be on the default remote. Nothing is
	// printed before everything compared was read: what is found goes to
	// a spool until then.
	sp := newSpool()
	defer sp.close()
	spooled, spooledIO := *opts, *opts.IO
	spooledIO.Out = sp
	spooled.IO = &spooledIO
	err = readThrough(ctx, opts.Factory, r, func() error {
		sp.reset()
		return diffStored(ctx, &spooled, r)
	})
	opts.differ = spooled.differ
	if err != nil {
		return err
	}
	return sp.copyTo(opts.IO.Out)
}

func diffStored(ctx context.Context, opts *diffOptions, r *cas.Repo) error {
	if err := diffAmbiguous(ctx, r, opts); err != nil {
		return err
	}
	if done, err := diffManifests(ctx, r, opts); done || err != nil {
		return err
	}
	if done, err := diffCheckpoints(ctx, opts); done || err != nil {
		return err
	}
	a, err := manifest.ResolveSpec(ctx, r, opts.A)
	if err != nil {
		return err
	}
	_, statErr := os.Lstat(opts.B)
	onDisk := statErr == nil
	var b *cas.Object
	if !onDisk {
		if b, err = manifest.ResolveSpec(ctx, r, opts.B); err != nil {
			return err
		}
	}
	bRun := b != nil && b.Type == cas.TypeManifest // a path on disk is no run
	if (a.Type == cas.TypeManifest) != bRun {
		run, other := opts.A, opts.B
		if bRun {
			run, other = opts.B, opts.A
		}
		return &userError{msg: fmt.Sprintf("%s is a run, %s is not: cas diff compares two runs, two trees or two checkpoints", run, other),
			hint: "name what a run produced as " + run + ":outputs/NAME"}
	}
	p := &changePrinter{w: opts.IO.Out, asJSON: opts.JSON, json: &jsonList{w: opts.IO.Out}}
	if onDisk {
		// The directory is compared with the stored tree as it is walked,
		// one directory at a time: nothing holds its whole tree.
		_, err = cas.DiffPath(ctx, r, a, r.StoreTrees(), opts.B, cas.DiffPathOptions{Excludes: opts.Excludes}, p.change)
	} else {
		err = cas.DiffEach(ctx, a, r.StoreTrees(), b, r.StoreTrees(), p.change)
	}
	if err != nil {
		return err
	}
	opts.differ = p.n > 0
	if err := p.close(); err != nil {
		return err
	}
	if opts.JSON {
		_, err = fmt.Fprintln(opts.IO.Out)
	}
	return err
}

// diffAmbiguous refuses a second argument that names both a ref and a
// file or directory on disk, rather than guess which is meant: ./NAME or
// NAME/ is the path, NAME: the ref.
func diffAmbiguous(ctx context.Context, r *cas.Repo, opts *diffOptions) error {
	b := opts.B
	fi, err := os.Lstat(b)
	if err != nil || !cas.ValidRefName(b) {
		return nil
	}
	if _, err := manifest.ResolveSpec(ctx, r, b); err != nil {
		return nil // not a ref: the path it is
	}
	kind, path := "file", "./"+b
	if fi.IsDir() {
		kind, path = "directory", b+"/"
	}
	return &userError{msg: fmt.Sprintf("%q is both a ref and a %s on disk", b, kind), code: exitUsage,
		hint: fmt.Sprintf("say which: `cas diff %s %s` compares with the %s, `cas diff %s %s:` with the ref", opts.A, path, kind, opts.A, b)}
}

// changePrinter prints changes as they are found, a line each with the
// totals at the end, or as the elements of a JSON list.
type changePrinter struct {
	w                        io.Writer
	asJSON                   bool
	json                     *jsonList
	n                        int
	added, removed, modified int
}

func (p *changePrinter) change(c cas.Change) error {
	p.n++
	if p.asJSON {
		return p.json.add(c)
	}
	var err error
	switch c.Op {
	case "added":
		p.added++
		_, err = fmt.Fprintf(p.w, "+ %s (%s)\n", displayName(c.Path), bytesStr(c.NewSize))
	case "removed":
		p.removed++
		_, err = fmt.Fprintf(p.w, "- %s (%s)\n", displayName(c.Path), bytesStr(c.OldSize))
	default:
		p.modified++
		_, err = fmt.Fprintf(p.w, "~ %s (%s -> %s)\n", displayName(c.Path), bytesStr(c.OldSize), bytesStr(c.NewSize))
	}
	return err
}

// close ends the JSON list (without a newline), or prints the totals.
func (p *changePrinter) close() error {
	if p.asJSON {
		return p.json.close()
	}
	var err error
	if p.n == 0 {
		_, err = fmt.Fprintln(p.w, "no differences")
	} else {
		_, err = fmt.Fprintf(p.w, "%d added, %d removed, %d modified\n", p.added, p.removed, p.modified)
	}
	return err
}

// diffManifests compares A and B when both name manifests, and reports
// whether they did.
func diffManifests(ctx context.Context, r *cas.Repo, opts *diffOptions) (bool, error) {
	if _, err := os.Lstat(opts.B); err == nil {
		return false, nil // B is a path on disk
	}
	a, _, errA := manifest.Resolve(ctx, r, opts.A)
	b, _, errB := manifest.Resolve(ctx, r, opts.B)
	switch {
	case errA != nil && errB != nil:
		return false, nil
	case errA == nil && errB != nil && !errors.Is(errB, cas.ErrNotFound) && !errors.Is(errB, remote.ErrNotFound):
		// Never fall back to comparing a run's manifest bytes as a file.
		return true, &userError{msg: fmt.Sprintf("%s is a run, %s is not: cas diff compares two runs, two trees or two checkpoints", opts.A, opts.B),
			hint: "name what a run produced as " + opts.A + ":outputs/NAME"}
	case errB == nil && errA != nil && !errors.Is(errA, cas.ErrNotFound) && !errors.Is(errA, remote.ErrNotFound):
		return true, &userError{msg: fmt.Sprintf("%s is a run, %s is not: cas diff compares two runs, two trees or two checkpoints", opts.B, opts.A),
			hint: "name what a run produced as " + opts.B + ":outputs/NAME"}
	case errA != nil || errB != nil:
		return false, nil
	}
	pa, err := manifest.LoadObject(ctx, r, a.Environment.Packages, 64<<20)
	if err != nil {
		return true, err
	}
	pb, err := manifest.LoadObject(ctx, r, b.Environment.Packages, 64<<20)
	if err != nil {
		return true, err
	}
	diffs := manifest.Diff(a, b, pa, pb)
	opts.differ = len(diffs) > 0
	if opts.JSON {
		return true, writeJSON(opts.IO.Out, diffs)
	}
	if len(diffs) == 0 {
		fmt.Fprintln(opts.IO.Out, "the runs match")
		return true, nil
	}
	printDifferences(opts.IO, diffs, a.Name, b.Name)
	return true, nil
}

// diffCheckpoints compares A and B when both read as checkpoints, and
// reports whether they did.
func diffCheckpoints(ctx context.Context, opts *diffOptions) (bool, error) {
	a, _, err := inspectTarget(ctx, &inspectOptions{Target: opts.A, Factory: opts.Factory}, false)
	if err != nil {
		return false, nil
	}
	b, _, err := inspectTarget(ctx, &inspectOptions{Target: opts.B, Factory: opts.Factory}, false)
	if err != nil {
		return false, nil
	}
	d := ckpt.Diff(a, b)
	opts.differ = !d.Equal()
	if opts.JSON {
		return true, writeJSON(opts.IO.Out, d)
	}
	w := opts.IO.Out
	marks := map[string]string{"added": "+", "removed": "-", "changed": "~"}
	for _, c := range d.Tensors {
		t := c.New
		if t == nil {
			t = c.Old
		}
		fmt.Fprintf(w, "%s %s (%s %v)\n", orDash(marks[c.Op]), c.Path, t.DType, t.Shape)
	}
	for _, c := range d.RNG {
		fmt.Fprintf(w, "rng %-16s %-8s %s\n", c.Kind, c.Op, c.Path)
	}
	fmt.Fprintf(w, "%d tensors changed, added or removed; %d unchanged\n", len(d.Tensors), d.Unchanged)
	return true, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
