package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
)

type verifyOptions struct {
	IO      *IOStreams
	Factory *Factory
	Ref     string
	Remote  string
	Key     string
	JSON    bool
	Quiet   bool
}

func newCmdVerify(f *Factory) *cobra.Command {
	opts := &verifyOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "verify [REF]",
		Short: "Re-read stored data and check every digest",
		Long: `Re-read stored data and check every chunk, file and tree against its digest.

With REF, check everything that REF needs and name each damaged file.
When REF is a run, check everything its manifest binds, one line a check:
inputs, outputs, code patch, package list, config, logs, and the RNG
fingerprints of its checkpoints, recomputed from the stored bytes.
Without, check every pack and index segment in the store, then every ref.
With --remote NAME (or --from NAME), check REF on the remote alone,
trusting nothing local: every object it needs must be there and intact.
Exit status 3 means damage was found, 0 that all is intact.`,
		Example: "  cas verify\n  cas verify train --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Ref = args[0]
			}
			return verifyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "print only problems; no progress bar")
	cmd.Flags().StringVar(&opts.Remote, "remote", "", "verify on the remote `NAME` instead, trusting nothing local")
	cmd.Flags().StringVar(&opts.Remote, "from", "", "the same as --remote: verify what the remote `NAME` holds")
	cmd.Flags().StringVar(&opts.Key, "key", "", "check a pin's signature with the public key in `PUBKEY` (cas keygen)")
	return cmd
}

func verifyRun(ctx context.Context, opts *verifyOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	remotes := remotesConfigured(r)
	if opts.Remote != "" {
		if opts.Ref == "" {
			return usageError("--remote needs a REF to verify")
		}
		be, _, err := opts.Factory.openRemote(ctx, r, opts.Remote)
		if err != nil {
			return err
		}
		if r, err = cas.OpenRemoteOnly(ctx, be); err != nil {
			return err
		}
		defer r.Close()
	}
	var pin *cas.Pin // the pin REF names, if it names one
	if opts.Ref != "" {
		pin, _ = findPin(ctx, r, opts.Ref)
	}
	if opts.Ref != "" && opts.Key == "" && pin == nil {
		if m, d, err := manifest.Resolve(ctx, r, opts.Ref); err == nil {
			return verifyManifest(ctx, opts, r, m, d)
		}
	}
	prog := &cas.Progress{}
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "verifying", prog)
	var rep *cas.VerifyReport
	var checks []manifest.Check // a pin's, one line each
	if opts.Ref != "" {
		if pin != nil {
			var pc *pinCheck
			if pc, err = checkPin(pin, opts.Key); err == nil {
				rep, checks, err = manifest.VerifyPin(ctx, r, pc.Pin, prog)
				if err == nil && pc.KeyID != "" {
					sig := manifest.Check{Kind: manifest.CheckSignature, What: "signature", OK: true, Detail: "in-toto statement signed by key " + pc.KeyID}
					checks = slices.Insert(checks, 1, sig)
				}
				if err == nil && pc.KeyID == "" && pin.Signed() {
					fmt.Fprintf(opts.IO.ErrOut, "note: pin %s is signed, and its signature was not checked: give --key PUBKEY to check who signed it\n", pin.Name)
				}
			}
		} else if opts.Key != "" {
			err = usageError("--key checks a pin's signature; %s is not a pin (`cas pins` lists them)", opts.Ref)
		} else {
			var obj *cas.Object
			if obj, err = manifest.ResolveSpec(ctx, r, opts.Ref); err == nil {
				rep, err = r.Verify(ctx, obj, opts.Ref, prog)
			}
		}
	} else {
		rep, err = r.VerifyAll(ctx, prog)
	}
	stop()
	if err != nil {
		return err
	}
	ok := rep.OK()
	for _, c := range checks {
		ok = ok && c.OK
	}
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, struct {
			OK bool `json:"ok"`
			*cas.VerifyReport
			Checks []manifest.Check `json:"checks,omitempty"`
		}{ok, rep, checks}); err != nil {
			return err
		}
	} else {
		printChecks(opts.IO.Out, checks, opts.Quiet)
		for _, p := range rep.Problems {
			if p.Missing {
				fmt.Fprintf(opts.IO.Out, "MISSING %s: %s (not in the store read)\n", displayName(p.Path), p.Err)
			} else {
				fmt.Fprintf(opts.IO.Out, "DAMAGED %s: %s\n", displayName(p.Path), p.Err)
			}
		}
		if !opts.Quiet {
			what := count(rep.Files, "file") + ", "
			if rep.Links > 0 {
				what += count(rep.Links, "symlink") + ", "
			}
			what += count(rep.Dirs, "directory") + ", " + bytesStr(rep.Bytes)
			if opts.Ref == "" {
				what = fmt.Sprintf("%s, %s: ", count(rep.Packs, "pack"), count(len(rep.Objects), "ref")) + what
			}
			if rep.OK() {
				fmt.Fprintf(opts.IO.Out, "ok: %s intact\n", what)
			} else {
				fmt.Fprintf(opts.IO.Out, "%s in %s\n", count(len(rep.Problems), "problem"), what)
			}
		}
	}
	if !ok {
		return verifyFailure(rep, opts.Remote, opts.Ref, remotes)
	}
	return nil
}

// verifyFailure is the error of a verify that found problems: damage, or,
// when nothing read was wrong, data missing from the store read, with
// how to fetch it or check it where it is.
func verifyFailure(rep *cas.VerifyReport, from, ref string, remotes bool) error {
	if rep == nil || rep.Damaged() {
		return errDamaged
	}
	if from != "" {
		return &userError{msg: "data missing from " + from + " (nothing read was damaged)", hint: "push it there again from a store that has it", code: exitDamaged}
	}
	hint := "`cas pull " + cmp.Or(ref, "REF") + "` fetches it from the default remote; `cas verify " + cmp.Or(ref, "REF") + " --from NAME` checks it on a remote"
	if !remotes {
		hint = noRemoteHint
	}
	return &userError{msg: "data missing from the local store (nothing read was damaged)", hint: hint, code: exitDamaged}
}

// printChecks prints one line a check: "ok  ", "FAIL" (damage) or
// "MISSING" (not in the store read), what, detail.
// With quiet, only failed checks are printed.
func printChecks(w io.Writer, checks []manifest.Check, quiet bool) {
	for _, c := range checks {
		if quiet && c.OK {
			continue
		}
		mark := "ok  "
		switch {
		case !c.OK && c.Missing:
			mark = "MISSING"
		case !c.OK:
			mark = "FAIL"
		}
		line := mark + " " + c.What
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(w, line)
	}
}

// verifyManifest checks everything a run's manifest binds, one line a check.
func verifyManifest(ctx context.Context, opts *verifyOptions, r *cas.Repo, m *manifest.Manifest, d digest.Digest) error {
	checks, err := manifest.Verify(ctx, r, m, d)
	if err != nil {
		return err
	}
	ok := true
	for _, c := range checks {
		ok = ok && c.OK
	}
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, struct {
			OK     bool             `json:"ok"`
			Run    string           `json:"run"`
			Digest string           `json:"digest"`
			Checks []manifest.Check `json:"checks"`
		}{ok, m.Name, d.String(), checks}); err != nil {
			return err
		}
	} else {
		printChecks(opts.IO.Out, checks, opts.Quiet)
		if ok && !opts.Quiet {
			fmt.Fprintf(opts.IO.Out, "ok: run %s (%s) and everything it binds are intact\n", m.Name, d.Short())
		}
	}
	if !ok {
		rep := &cas.VerifyReport{}
		for _, c := range checks {
			if !c.OK {
				rep.Problems = append(rep.Problems, cas.Problem{Path: c.What, Err: c.Detail, Missing: c.Missing})
			}
		}
		return verifyFailure(rep, opts.Remote, opts.Ref, opts.Remote != "" || remotesConfigured(r))
	}
	return nil
}
