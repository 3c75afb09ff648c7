package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
)

type statusOptions struct {
	IO       *IOStreams
	Factory  *Factory
	Path     string
	Excludes []string
	JSON     bool
}

func newCmdStatus(f *Factory) *cobra.Command {
	opts := &statusOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "status [PATH]",
		Short: "Show what changed since the last push",
		Long: `Compare PATH with what the last 'cas push PATH' from this store stored, as
git status does: unchanged files are recognised by their stat data and not
read. .casignore files apply as they do to push; give the same --exclude
patterns as the push did (or put them in a .casignore so they stick).

Without PATH, give one line for each path pushed from this store that lies
in the working directory: unchanged, how many files changed, or missing;
then one for each remote the store still owes uploads to (pushes and runs
stored while it could not be reached; 'cas sync' sends them).`,
		Example: "  cas status\n  cas status data/\n  cas status data/ --exclude '*.tmp'",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return statusAllRun(cmd.Context(), opts)
			}
			opts.Path = args[0]
			return statusRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Excludes, "exclude", "e", nil, "leave out paths matching `PATTERN`, as push does")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print changes as JSON")
	return cmd
}

func statusRun(ctx context.Context, opts *statusOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(opts.Path)
	if err != nil {
		return err
	}
	last, ok, err := r.LastPush(abs)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := os.Lstat(opts.Path); err != nil {
			return err // no such file: nothing to push either
		}
		return &userError{msg: opts.Path + " has not been pushed from this store", hint: "run `cas push " + opts.Path + "` first"}
	}
	// The path is compared with the stored tree as it is walked, one
	// directory at a time; what is found goes to a spool (memory, then a
	// temporary file), so that nothing is printed if the walk fails and,
	// with --json, the path's digest and whether anything changed, which
	// the walk finds, can come before the list.
	sp := newSpool()
	defer sp.close()
	p := &changePrinter{w: sp, asJSON: opts.JSON, json: &jsonList{w: sp, indent: "  "}}
	now, err := cas.DiffPath(ctx, r, last, r.StoreTrees(), opts.Path,
		cas.DiffPathOptions{Excludes: opts.Excludes, Digest: opts.JSON}, p.change)
	if err != nil {
		return err
	}
	if err := p.close(); err != nil {
		return err
	}
	out := bufio.NewWriter(opts.IO.Out)
	if opts.JSON {
		var head bytes.Buffer
		err = writeJSON(&head, struct {
			Path    string       `json:"path"`
			Pushed  string       `json:"pushed"`
			Current string       `json:"current"`
			Changed bool         `json:"changed"`
			Changes []cas.Change `json:"changes"`
		}{opts.Path, last.Digest.String(), now.Digest.String(), p.n > 0, []cas.Change{}})
		if err != nil {
			return err
		}
		// The list, spooled, is written where the empty one stands.
		if _, err := out.Write(bytes.TrimSuffix(head.Bytes(), []byte("[]\n}\n"))); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "last pushed as %s\n", last.Digest.Short())
	}
	if err := sp.copyTo(out); err != nil {
		return err
	}
	if opts.JSON {
		fmt.Fprint(out, "\n}\n")
	}
	return out.Flush()
}

// pushedFile, in a store's directory, lists the paths pushed from it, a
// JSON string a line, appended by every push: what a bare cas status
// looks at. The last push of each is in the stat cache (Repo.LastPush).
const pushedFile = "pushed"

// recordPushed appends the absolute paths of a push to the store's list
// of pushed paths, unless they are there already. Each line is one
// write to a file opened for appending, so that pushes at the same time
// do not mix their lines.
func recordPushed(r *cas.Repo, paths []string) error {
	known := map[string]bool{}
	for _, p := range loadPushed(r) {
		known[p] = true
	}
	var add []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err == nil && !known[abs] {
			known[abs] = true
			add = append(add, abs)
		}
	}
	if len(add) == 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(r.Dir, pushedFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for _, p := range add {
		b, _ := json.Marshal(p)
		if _, err := f.Write(append(b, '\n')); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// loadPushed reads the store's list of pushed paths, first push first,
// without repeats; lines that do not read are skipped (the list is a
// convenience, rebuilt by the next pushes).
func loadPushed(r *cas.Repo) []string {
	b, err := os.ReadFile(filepath.Join(r.Dir, pushedFile))
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, line := range bytes.Split(b, []byte("\n")) {
		var p string
		if json.Unmarshal(line, &p) != nil || !filepath.IsAbs(p) || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// pathStatus is one line of a bare status, and an element of its --json.
type pathStatus struct {
	Path     string `json:"path"`
	Pushed   string `json:"pushed"`
	Missing  bool   `json:"missing"`
	Changed  bool   `json:"changed"`
	Added    int    `json:"added"`
	Removed  int    `json:"removed"`
	Modified int    `json:"modified"`
}

func statusAllRun(ctx context.Context, opts *statusOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	wd, err := opts.Factory.WorkDir()
	if err != nil {
		return err
	}
	list := []pathStatus{}
	for _, abs := range loadPushed(r) {
		rel, err := filepath.Rel(wd, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue // not in the working directory
		}
		last, ok, err := r.LastPush(abs)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		st := pathStatus{Path: rel, Pushed: last.Digest.String()}
		if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
			st.Missing = true
			list = append(list, st)
			continue
		}
		_, err = cas.DiffPath(ctx, r, last, r.StoreTrees(), abs, cas.DiffPathOptions{Excludes: opts.Excludes}, func(c cas.Change) error {
			switch c.Op {
			case "added":
				st.Added++
			case "removed":
				st.Removed++
			default:
				st.Modified++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		st.Changed = st.Added+st.Removed+st.Modified > 0
		list = append(list, st)
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, list)
	}
	owed, err := owedUploads(r)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(opts.IO.Out, "nothing pushed from this store lies here")
		fmt.Fprint(opts.IO.Out, owed)
		return nil
	}
	names := make([]string, len(list))
	for i, st := range list {
		names[i] = displayName(st.Path)
	}
	w := columnWidth(names, 8)
	for i, st := range list {
		short := st.Pushed[len(digest.Prefix):][:12]
		var what string
		switch {
		case st.Missing:
			what = "missing (pushed as " + short + ")"
		case !st.Changed:
			what = "unchanged since " + short
		default:
			what = fmt.Sprintf("%s changed since %s: %d added, %d removed, %d modified",
				count(st.Added+st.Removed+st.Modified, "file"), short, st.Added, st.Removed, st.Modified)
		}
		fmt.Fprintf(opts.IO.Out, "%s  %s\n", padRight(fitName(names[i], w), w), what)
	}
	fmt.Fprint(opts.IO.Out, owed)
	return nil
}

// owedUploads gives a line for each remote the store owes uploads to
// (pushes and runs stored while it could not be reached), or nothing.
func owedUploads(r *cas.Repo) (string, error) {
	ps, err := r.PendingUploads("")
	if err != nil {
		return "", err
	}
	n := map[string]int{}
	var order []string
	for _, p := range ps {
		if n[p.Remote] == 0 {
			order = append(order, p.Remote)
		}
		n[p.Remote]++
	}
	var b strings.Builder
	hint := syncHints(r)
	for _, name := range order {
		fmt.Fprintf(&b, "%s owed to %s (stored here only): %s\n", count(n[name], "upload"), name, hint(name))
	}
	return b.String(), nil
}
