package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/manifest/ckpt"
)

type inspectOptions struct {
	IO      *IOStreams
	Factory *Factory
	Target  string
	JSON    bool
	Lint    bool
}

func newCmdInspect(f *Factory) *cobra.Command {
	opts := &inspectOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "inspect FILE|REF[:path]",
		Short: "List the tensors and RNG states of a checkpoint",
		Long: `Read a checkpoint without Python and list its tensors (path in the object
graph, dtype, shape, size, digest of the data) and the random number
generator states inside it, found by their structure wherever they sit:
torch CPU and CUDA states, numpy's MT19937 and Generator states, Python's
random state. Reads torch checkpoints (zip and pre-1.6 formats), pickles,
numpy .npy and .npz, and safetensors; pickles are parsed, never run.

For each tensor whose bytes lie uncompressed in the file, STORED (and
"compression" in --json) shows what a push would store it as: the stored
bytes, their ratio to the raw ones and the codec (float: bytes grouped by
position and entropy-coded, for float tensors; zstd; none), with the
tensor cut in chunks of 1 MiB.

FILE is a path on disk; inside a cas store, a REF or REF:path naming a
stored file works too.

With --lint, print only what a bit-exact resume from this checkpoint would
miss (an optimizer state without the torch, numpy or Python RNG state,
tensors saved from CUDA without the CUDA RNG state, unreadable parts), and
exit with status 4 if anything was found (1 is an error: the file could
not be read). docs/checkpoints.md documents
the --json output and how fingerprints are computed.`,
		Example: "  cas inspect model.pt\n  cas inspect --lint ckpt/epoch3.pt\n  cas inspect run-42:ckpt/last.pt --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			return inspectRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&opts.Lint, "lint", false, "print warnings about a bit-exact resume; exit status 4 if any")
	return cmd
}

// inspectOutput is the --json form: the report, plus the warnings with
// --lint.
type inspectOutput struct {
	*ckpt.Report
	// Compression says, per tensor whose bytes lie uncompressed in the
	// file, what a push would store them as.
	Compression *[]tensorStored `json:"compression,omitempty"`
	Warnings    *[]ckpt.Warning `json:"warnings,omitempty"`
}

// tensorStored is what a push would store one tensor's bytes as: their
// stored length, its ratio to the raw bytes and the codec chosen, with
// the tensor cut in chunks of inspectPiece bytes.
type tensorStored struct {
	Path        string  `json:"path"`
	DType       string  `json:"dtype"`
	Bytes       int64   `json:"bytes"`
	StoredBytes int64   `json:"stored_bytes"`
	Ratio       float64 `json:"ratio"`
	Codec       string  `json:"codec"`
}

// inspectPiece is the chunk length inspect assumes: the default average.
const inspectPiece = 1 << 20

// tensorsStored computes what a push would store each tensor of rep as,
// reading its bytes from r (size bytes): those of contiguous tensors
// that lie uncompressed in the file.
func tensorsStored(r io.ReaderAt, size int64, rep *ckpt.Report) ([]tensorStored, error) {
	out := []tensorStored{}
	for _, t := range rep.Tensors {
		if t.FileOffset <= 0 || t.NonContiguous || t.Bytes <= 0 || t.Bytes > size-t.FileOffset {
			continue
		}
		dtype := t.DType
		if t.Endian == "big" {
			dtype = "" // the float codec reads little-endian elements
		}
		stored, codec, err := cas.StoredSize(r, t.FileOffset, t.Bytes, dtype, inspectPiece)
		if err != nil {
			return nil, err
		}
		out = append(out, tensorStored{Path: t.Path, DType: t.DType, Bytes: t.Bytes, StoredBytes: stored,
			Ratio: float64(stored) / float64(t.Bytes), Codec: codec})
	}
	return out, nil
}

func inspectRun(ctx context.Context, opts *inspectOptions) error {
	rep, stored, err := inspectTarget(ctx, opts, !opts.Lint)
	if err != nil {
		return err
	}
	var warnings []ckpt.Warning
	if opts.Lint {
		warnings = ckpt.Lint(rep)
		if warnings == nil {
			warnings = []ckpt.Warning{}
		}
	}
	switch {
	case opts.JSON:
		out := inspectOutput{Report: rep}
		if !opts.Lint {
			out.Compression = &stored
		}
		if opts.Lint {
			out.Warnings = &warnings
		}
		if err := writeJSON(opts.IO.Out, out); err != nil {
			return err
		}
	case opts.Lint:
		for _, w := range warnings {
			fmt.Fprintf(opts.IO.Out, "warning: %s [%s]\n", w.Message, w.Code)
		}
		if len(warnings) == 0 {
			fmt.Fprintln(opts.IO.Out, "no warnings")
		}
	default:
		printReport(opts.IO.Out, rep, stored)
	}
	if n := len(warnings); n > 0 {
		return &userError{msg: fmt.Sprintf("%s: %s", opts.Target, count(n, "lint warning")), code: exitLinted}
	}
	return nil
}

// inspectTarget inspects a file on disk or, inside a store, a stored file.
func inspectTarget(ctx context.Context, opts *inspectOptions, withStored bool) (*ckpt.Report, []tensorStored, error) {
	fi, statErr := os.Stat(opts.Target)
	if statErr == nil {
		if fi.IsDir() {
			return nil, nil, &userError{msg: opts.Target + " is a directory", hint: "inspect one checkpoint file inside it"}
		}
		f, err := os.Open(opts.Target)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		return inspectReader(f, fi.Size(), opts.Target, withStored)
	}
	if !errors.Is(statErr, os.ErrNotExist) {
		return nil, nil, statErr
	}
	repo, err := opts.Factory.Repo(ctx)
	if err != nil {
		return nil, nil, statErr // no store: the path is what was meant
	}
	tmp, err := os.CreateTemp("", "cas-inspect-*")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var obj *cas.Object
	err = readThrough(ctx, opts.Factory, repo, func() (err error) {
		if obj, err = manifest.ResolveSpec(ctx, repo, opts.Target); err != nil {
			return err
		}
		if !obj.Kind.IsFile() {
			return &userError{msg: opts.Target + " is a stored " + obj.Kind.String(), hint: "name a file inside it: `cas inspect " + opts.Target + ":path/to/model.pt`"}
		}
		if err := tmp.Truncate(0); err != nil {
			return err
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return repo.WriteFile(ctx, obj, tmp)
	})
	if errors.Is(err, cas.ErrNotFound) && obj == nil {
		return nil, nil, &userError{msg: "no such file or stored ref: " + opts.Target, hint: "`cas refs` lists names; a stored file inside a tree is REF:path"}
	}
	if err != nil {
		return nil, nil, err
	}
	return inspectReader(tmp, obj.Size, opts.Target, withStored)
}

// inspectReader inspects a checkpoint and, withStored, what a push would
// store its tensors as.
func inspectReader(r io.ReaderAt, size int64, name string, withStored bool) (*ckpt.Report, []tensorStored, error) {
	rep, err := inspectFile(r, size, name)
	if err != nil {
		return nil, nil, err
	}
	if !withStored {
		return rep, nil, nil
	}
	stored, err := tensorsStored(r, size, rep)
	return rep, stored, err
}

func inspectFile(r io.ReaderAt, size int64, name string) (*ckpt.Report, error) {
	rep, err := ckpt.Inspect(r, size, name)
	why := err // without the package's name
	var ce *ckpt.Error
	if errors.As(err, &ce) {
		why = ce.Err
	}
	switch {
	case errors.Is(err, ckpt.ErrFormat):
		return nil, &userError{msg: name + ": not a checkpoint cas can read", hint: "cas reads torch .pt/.pth (zip and legacy), pickles, .npy, .npz and .safetensors"}
	case errors.Is(err, ckpt.ErrLimit):
		return nil, &userError{msg: why.Error(), hint: "the file goes beyond what cas reads safely: see docs/checkpoints.md"}
	case errors.Is(err, ckpt.ErrMalformed):
		return nil, &userError{msg: why.Error(), hint: "the file is damaged or truncated"}
	}
	return rep, err
}

func printReport(w io.Writer, rep *ckpt.Report, stored []tensorStored) {
	storedOf := map[string]tensorStored{}
	for _, t := range stored {
		storedOf[t.Path] = t
	}
	var total int64
	devices := false
	for _, t := range rep.Tensors {
		total += t.Bytes
		devices = devices || (t.Device != "" && t.Device != "cpu")
	}
	fmt.Fprintf(w, "%s: %s, %s\n", rep.Name, rep.Format, bytesStr(rep.Size))
	fmt.Fprintf(w, "tensors: %d, %s\n", len(rep.Tensors), bytesStr(total))
	if len(rep.Tensors) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		head := "  PATH\tDTYPE\tSHAPE\tSIZE\tSTORED\tDIGEST"
		if devices {
			head += "\tDEVICE"
		}
		fmt.Fprintln(tw, head)
		for _, t := range rep.Tensors {
			d := "-"
			if !t.Digest.IsZero() {
				d = t.Digest.Short()
			}
			st := "-"
			if ts, ok := storedOf[t.Path]; ok {
				st = fmt.Sprintf("%s %.3f %s", bytesStr(ts.StoredBytes), ts.Ratio, ts.Codec)
			}
			line := fmt.Sprintf("  %s\t%s\t%s\t%s\t%s\t%s", ckptPath(t.Path), t.DType, ckptShape(t.Shape), bytesStr(t.Bytes), st, d)
			if devices {
				line += "\t" + t.Device
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "rng states: %d\n", len(rep.RNG))
	if len(rep.RNG) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tPATH\tFINGERPRINT\tSUMMARY")
		for _, s := range rep.RNG {
			fp := "-"
			if !s.Fingerprint.IsZero() {
				fp = s.Fingerprint.Short()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Kind, ckptPath(s.Path), fp, s.Summary)
		}
		tw.Flush()
	}
	for _, p := range rep.Optimizers {
		fmt.Fprintf(w, "optimizer state: %s\n", ckptPath(p))
	}
	for _, k := range slices.Sorted(maps.Keys(rep.Metadata)) {
		fmt.Fprintf(w, "metadata: %s = %s\n", k, rep.Metadata[k])
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}

func ckptPath(p string) string {
	if p == "" {
		return "<root>"
	}
	return p
}

func ckptShape(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
