package cli

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/manifest/attest"
	"github.com/cas-ml/cas/remote"
)

type pinOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	Ref     string
	Message string
	Sign    string
	To      string
	Local   bool
	Retain  string
	JSON    bool
	Quiet   bool
}

func newCmdPin(f *Factory) *cobra.Command {
	opts := &pinOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "pin NAME REF",
		Short: "Make a run or dataset permanent under a name, and publish it",
		Long: `Pin REF (a run manifest, a tree or a file) under NAME: the pin keeps REF and
its whole closure (for a run: inputs, outputs, code diff, package list, logs,
config) from garbage collection, and on a remote it publishes the result.

With a default remote (cas remote add), or --to NAME, everything the remote
lacks is uploaded first and the closure is checked there; only then is the
pin written, so a published pin never names missing data. --local pins in
the local store only: a GC root, not published.

A pin never moves: pinning NAME again to the same target changes nothing,
to another target fails. --sign KEYFILE (from cas keygen) adds an in-toto
statement in a DSSE envelope that reviewers check with cas verify --key.

--retain DURATION (e.g. 90d, 5y, 720h) also puts the pin, every pack of its
closure and the index segments naming them under S3 Object Lock retention
(COMPLIANCE mode): nobody, not even the bucket's owner, can delete or
overwrite them before it ends. The bucket must have been created with Object
Lock enabled. Pinning again with a longer --retain extends it.`,
		Example: `  cas pin paper/fig3 runs/lr-sweep-7 -m "Figure 3, seed 1"
  cas pin paper/fig3 runs/lr-sweep-7 --sign ~/.config/cas/signing.key
  cas pin paper/final runs/lr-sweep-7 --retain 5y
  cas pin imagenet-val blake3:3f2a9c1e --local`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.Ref = args[0], args[1]
			return pinRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Message, "message", "m", "", "say what the pin is for (`TEXT`)")
	cmd.Flags().StringVar(&opts.Sign, "sign", "", "sign with the private key in `KEYFILE` (cas keygen)")
	cmd.Flags().StringVar(&opts.To, "to", "", "publish on the remote `NAME` (default: the default remote)")
	cmd.Flags().BoolVar(&opts.Local, "local", false, "pin in the local store only; publish nothing")
	cmd.Flags().StringVar(&opts.Retain, "retain", "", "keep pin and closure undeletable for `DURATION` (S3 Object Lock; 90d, 5y, 720h)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the pin as JSON")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// pinOutput is pin's --json object: the pin and where it went.
type pinOutput struct {
	*cas.Pin
	Remote    string `json:"remote,omitempty"`
	Published bool   `json:"published"`
	Existing  bool   `json:"existing"`
	KeyID     string `json:"key_id,omitempty"`
}

func pinRun(ctx context.Context, opts *pinOptions) error {
	name := strings.TrimPrefix(opts.Name, cas.PinPrefix)
	retain, priv, err := opts.check(name)
	if err != nil {
		return err
	}
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	be, rc, err := opts.Factory.targetRemote(ctx, r, opts.To, opts.Local)
	if err != nil {
		return err
	}
	if retain > 0 && be == nil {
		return &userError{msg: "--retain needs a remote, and this store has none", hint: "`cas remote add` a bucket created with Object Lock, then pin with --to", code: exitUsage}
	}
	if be != nil {
		// The index learns what the remote holds: data pushed from another
		// machine can be pinned here.
		if err := r.UseRemote(ctx, be); err != nil {
			return err
		}
	}
	obj, err := resolvePinTarget(ctx, r, opts.Ref)
	if err != nil {
		return err
	}
	out := pinOutput{}
	// One time, to the millisecond, for the pin and its statement.
	po := cas.PinOptions{Message: opts.Message, Retain: retain, Time: opts.Factory.Now().UTC().Truncate(time.Millisecond)}
	if priv != nil {
		key := attest.KeyID(priv.Public().(ed25519.PublicKey))
		st := attest.NewPinStatement(name, obj.Digest, opts.Message, po.Time, key)
		st.Describe(obj.Kind.String(), obj.Type, obj.Size)
		if retain > 0 {
			// What the pin will record (an existing pin keeps its own).
			until := cas.RetainUntil(po.Time, retain)
			st.Predicate.RetainUntil = &until
		}
		if po.Envelope, err = attest.Sign(st, priv); err != nil {
			return err
		}
		out.KeyID = key
	}
	if be == nil {
		if out.Pin, err = r.Pin(ctx, nil, name, *obj, po); err != nil {
			return pinError(err, "the local store")
		}
	} else if err := opts.publish(ctx, r, be, rc, name, obj, po, &out); err != nil {
		return err
	}
	out.Existing = out.Pin.Existing
	if opts.JSON {
		return writeJSON(opts.IO.Out, out)
	}
	opts.report(out, rc)
	return nil
}

// check validates the flags; it returns the retention asked for and the
// signing key, if any.
func (opts *pinOptions) check(name string) (time.Duration, ed25519.PrivateKey, error) {
	if !cas.ValidRefName(name) {
		return 0, nil, usageError("pin name %q: %v", opts.Name, cas.ErrBadRefName)
	}
	if opts.Local && opts.To != "" {
		return 0, nil, usageError("--local and --to exclude each other")
	}
	var retain time.Duration
	if opts.Retain != "" {
		d, err := parseRetention(opts.Retain)
		if err != nil {
			return 0, nil, usageError("--retain %q: %v", opts.Retain, err)
		}
		if opts.Local {
			return 0, nil, usageError("--retain needs a remote: a local store cannot lock objects")
		}
		retain = d
	}
	if opts.Sign == "" {
		return retain, nil, nil
	}
	k, err := attest.LoadPrivateKey(opts.Sign)
	if err != nil {
		return 0, nil, keyError(err)
	}
	return retain, k, nil
}

// publish pins obj on the remote be, then in the local store too (a GC
// root here, and what cas pins lists) when the local store holds it all.
func (opts *pinOptions) publish(ctx context.Context, r *cas.Repo, be remote.Backend, rc *remote.Config, name string, obj *cas.Object, po cas.PinOptions, out *pinOutput) error {
	prog := &cas.Progress{}
	po.Progress = prog
	stop := startProgress(opts.IO, opts.Quiet || opts.JSON, "uploading", prog)
	p, err := r.Pin(ctx, be, name, *obj, po)
	stop()
	if err != nil {
		return pinError(err, rc.Name)
	}
	out.Pin, out.Remote, out.Published = p, rc.Name, true
	if p.NotLocal && !opts.JSON {
		fmt.Fprintf(opts.IO.ErrOut, "note: the local store lacks part of %s, so it is pinned on %s only (cas pull %s keeps a copy here)\n", name, rc.Name, opts.Ref)
	}
	return nil
}

// report prints what pin did.
func (opts *pinOptions) report(out pinOutput, rc *remote.Config) {
	w, p := opts.IO.Out, out.Pin
	what := cmp.Or(p.Type, p.Kind.String())
	switch {
	case p.Existing:
		fmt.Fprintf(w, "pin %s already points at %s (%s); unchanged\n", p.Name, p.Target.Short(), what)
	case out.Published:
		fmt.Fprintf(w, "pinned %s -> %s (%s, %d more objects) on %s\n", p.Name, p.Target.Short(), what, len(p.Roots), rc.Name)
	default:
		fmt.Fprintf(w, "pinned %s -> %s (%s, %d more objects) in the local store\n", p.Name, p.Target.Short(), what, len(p.Roots))
	}
	if p.Signed() && !p.Existing {
		fmt.Fprintf(w, "signed by key %s\n", out.KeyID)
	}
	if p.RetainUntil != nil {
		fmt.Fprintf(w, "retained until %s: nobody can delete it or its data on %s before then\n", p.RetainUntil.UTC().Format(time.RFC3339), rc.Name)
	}
	if !out.Published {
		why := "no remote"
		if opts.Local {
			why = "--local"
		}
		fmt.Fprintf(opts.IO.ErrOut, "not published (%s): the pin keeps the data from GC here only; `cas remote add` and pin again to publish\n", why)
	}
}

// pinError turns the pin errors a user can act on into one line and a hint.
func pinError(err error, where string) error {
	switch {
	case errors.Is(err, cas.ErrPinExists):
		return &userError{msg: err.Error(), hint: "a pin never moves: choose another name, or `cas unpin NAME --force` first"}
	case errors.Is(err, cas.ErrIncomplete):
		return &userError{msg: err.Error(), hint: "the upload to " + where + " did not complete: run the pin again"}
	case errors.Is(err, remote.ErrNoObjectLock):
		return &userError{msg: err.Error(), hint: "--retain needs a bucket created with Object Lock enabled; pin without --retain, or use such a bucket"}
	}
	return err
}

// attestMsg is an attest error's text without the package's name.
func attestMsg(err error) string {
	var ae *attest.Error
	if errors.As(err, &ae) {
		return ae.Err.Error()
	}
	return err.Error()
}

func keyError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && errors.Is(err, os.ErrNotExist) {
		return &userError{msg: "no such key file: " + pe.Path, hint: "`cas keygen` makes a key pair", code: exitUsage}
	}
	if errors.Is(err, attest.ErrKeyFile) {
		return &userError{msg: attestMsg(err), hint: "--sign takes the .key file and --key the .pub file that `cas keygen` wrote", code: exitUsage}
	}
	return err
}

// resolvePinTarget resolves REF (also a bare run name, as runs/NAME) and
// checks that the store can resolve what it keeps; a manifest comes back
// with its Type set.
func resolvePinTarget(ctx context.Context, r *cas.Repo, ref string) (*cas.Object, error) {
	obj, err := manifest.ResolveSpec(ctx, r, ref)
	if err != nil {
		return nil, err
	}
	if _, err := r.Closure(ctx, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return obj, nil
}

// findPin reads the pin REF names ("pins/NAME" or "NAME") from r's
// backend. It returns an error wrapping cas.ErrNotFound when there is no
// such pin.
func findPin(ctx context.Context, r *cas.Repo, ref string) (*cas.Pin, error) {
	name := strings.TrimPrefix(ref, cas.PinPrefix)
	if !cas.ValidRefName(name) {
		return nil, fmt.Errorf("pin %q: %w", ref, cas.ErrNotFound)
	}
	return r.GetPin(ctx, nil, name)
}

// checkSigned checks that everything cas shows of pin p is what statement
// st says: its name (the key's and its JSON's), target, message, time,
// retention, and, where signed, kind, type and size.
func checkSigned(st *attest.Statement, p *cas.Pin) error {
	return st.CheckShown(attest.Shown{Names: []string{p.Name, p.StoredName}, Target: p.Target, Message: p.Message,
		Time: p.Time, Kind: p.Kind.String(), Type: p.Type, Size: p.Size, RetainUntil: p.RetainUntil})
}

// pinCheck is what verifyPin established about a pin.
type pinCheck struct {
	Pin *cas.Pin `json:"pin"`
	// KeyID is the key whose signature verified; empty when no key was
	// given.
	KeyID string `json:"key_id,omitempty"`
	// Statement is the verified in-toto statement, when a key was given.
	Statement *attest.Statement `json:"statement,omitempty"`
}

// verifyPin reads the pin REF names from r's backend and checks it
// (checkPin).
func verifyPin(ctx context.Context, r *cas.Repo, ref, keyFile string) (*pinCheck, error) {
	p, err := findPin(ctx, r, ref)
	if err != nil {
		return nil, err
	}
	return checkPin(p, keyFile)
}

// checkPin checks, when keyFile is set, pin p's signature with that
// public key and that the signed statement is about this pin and its
// target. The caller then verifies the data with manifest.VerifyPin.
// Without a key, a signed pin is checked against its statement all the
// same (who signed it is not). Failures are user errors with exit status 3.
func checkPin(p *cas.Pin, keyFile string) (*pinCheck, error) {
	pc := &pinCheck{Pin: p}
	if keyFile == "" {
		if !p.Signed() {
			return pc, nil
		}
		st, err := attest.Peek(p.Envelope)
		if err == nil {
			err = checkSigned(st, p)
		}
		if err != nil {
			return nil, &userError{msg: fmt.Sprintf("pin %s: %s", p.Name, attestMsg(err)), hint: "the pin or its statement was altered after signing: do not trust it", code: exitDamaged}
		}
		return pc, nil
	}
	pub, err := attest.LoadPublicKey(keyFile)
	if err != nil {
		return nil, keyError(err)
	}
	if !p.Signed() {
		return nil, &userError{msg: fmt.Sprintf("pin %s is not signed", p.Name), hint: "verify without --key to check the data alone", code: exitDamaged}
	}
	st, err := attest.Verify(p.Envelope, pub)
	if err == nil {
		err = checkSigned(st, p)
	}
	switch {
	case errors.Is(err, attest.ErrWrongKey):
		return nil, &userError{msg: fmt.Sprintf("pin %s: %s", p.Name, attestMsg(err)), hint: "ask the author for the public key that signed it", code: exitDamaged}
	case err != nil:
		return nil, &userError{msg: fmt.Sprintf("pin %s: %s", p.Name, attestMsg(err)), hint: "the pin or its statement was altered after signing: do not trust it", code: exitDamaged}
	}
	pc.KeyID, pc.Statement = attest.KeyID(pub), st
	return pc, nil
}

// pinsEntry is one pin as cas pins shows it: whether it is signed, and,
// when its fields differ from its signed statement, which (altered).
type pinsEntry struct {
	*cas.Pin
	Signed  bool   `json:"signed"`
	Altered string `json:"altered,omitempty"`
}

type pinsOptions struct {
	IO      *IOStreams
	Factory *Factory
	From    string
	JSON    bool
}

func newCmdPins(f *Factory) *cobra.Command {
	opts := &pinsOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:     "pins",
		Short:   "List pins",
		Long:    "List the pins of the local store, or with --from those published on a remote:\nname, what it points at, when, whether it is signed, and its message.",
		Example: "  cas pins\n  cas pins --from origin --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return pinsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "list the pins on the remote `NAME`")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print pins as JSON")
	return cmd
}

func pinsRun(ctx context.Context, opts *pinsOptions) error {
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	var be remote.Backend
	if opts.From != "" {
		if be, _, err = opts.Factory.openRemote(ctx, r, opts.From); err != nil {
			return err
		}
	}
	pins, err := r.Pins(ctx, be)
	if err = warnPartial(opts.IO, err); err != nil {
		return err
	}
	// Show what a signer said; a pin whose fields differ from it was
	// altered after signing (only verify --key proves who signed).
	show := make([]pinsEntry, len(pins))
	altered := false
	for i, p := range pins {
		show[i] = pinsEntry{Pin: p, Signed: p.Signed()}
		if !p.Signed() {
			continue
		}
		st, err := attest.Peek(p.Envelope)
		if err == nil {
			err = checkSigned(st, p)
		}
		if err != nil {
			show[i].Altered, altered = attestMsg(err), true
			fmt.Fprintf(opts.IO.ErrOut, "cas: pin %s: %s\n", displayName(p.Name), attestMsg(err))
			continue
		}
		// The signed time (a statement from before 2026-12 signed its
		// own, a little before the pin's).
		signed := *p
		signed.Time = st.Predicate.Time
		show[i].Pin = &signed
	}
	if opts.JSON {
		if err := writeJSON(opts.IO.Out, show); err != nil {
			return err
		}
	} else {
		for _, e := range show {
			p := e.Pin
			what := p.Kind.String()
			if p.Type != "" {
				what = p.Type
			}
			status := "-"
			switch {
			case e.Altered != "":
				status = "ALTERED"
			case e.Signed:
				status = "signed"
			}
			fmt.Fprintf(opts.IO.Out, "%-24s %-8s %s  %s  %-6s  %s\n", displayName(p.Name), what, p.Target.Short(), p.Time.Local().Format("2006-01-02 15:04"), status, displayText(p.Message))
		}
	}
	if altered {
		return &userError{msg: "a signed pin differs from what was signed", hint: "do not trust it; `cas verify PIN --key PUB` checks it", code: exitDamaged}
	}
	return nil
}

type unpinOptions struct {
	IO      *IOStreams
	Factory *Factory
	Name    string
	From    string
	Force   bool
	JSON    bool
}

func newCmdUnpin(f *Factory) *cobra.Command {
	opts := &unpinOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "unpin NAME --force",
		Short: "Remove a pin, so GC may collect what it kept",
		Long: `Remove pin NAME from the local store and, with --from REMOTE, from that
remote. The data stays until a GC finds nothing else keeps it. A published
pin is what reviewers cite, so this needs --force.`,
		Example: "  cas unpin scratch/try-3 --force\n  cas unpin paper/draft --from origin --force",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return unpinRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "really remove the pin")
	cmd.Flags().StringVar(&opts.From, "from", "", "also remove it from the remote `NAME`")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print what was removed as JSON")
	return cmd
}

func unpinRun(ctx context.Context, opts *unpinOptions) error {
	name := strings.TrimPrefix(opts.Name, cas.PinPrefix)
	if !cas.ValidRefName(name) {
		return usageError("pin name %q: %v", opts.Name, cas.ErrBadRefName)
	}
	if !opts.Force {
		return &userError{msg: fmt.Sprintf("unpin %s needs --force: what it keeps becomes collectable", name),
			hint: fmt.Sprintf("run `cas unpin %s --force` if that is what you want", name), code: exitUsage}
	}
	r, err := opts.Factory.Repo(ctx)
	if err != nil {
		return err
	}
	var removed []string
	if opts.From != "" {
		be, rc, err := opts.Factory.openRemote(ctx, r, opts.From)
		if err != nil {
			return err
		}
		err = r.Unpin(ctx, be, name)
		switch {
		case err == nil:
			removed = append(removed, rc.Name)
		case errors.Is(err, cas.ErrRetained):
			return &userError{msg: fmt.Sprintf("%v on %s", err, rc.Name), hint: "a pin under retention cannot be removed, by anyone, before its retention ends"}
		case errors.Is(err, remote.ErrAccessDenied):
			return &userError{msg: fmt.Sprintf("%s refused to delete pin %s: %v", rc.Name, name, err), hint: "a retention period or the bucket policy protects it"}
		case !errors.Is(err, cas.ErrNotFound):
			return err
		}
	}
	err = r.Unpin(ctx, nil, name)
	switch {
	case err == nil:
		removed = append(removed, "local")
	case !errors.Is(err, cas.ErrNotFound):
		return err
	}
	if len(removed) == 0 {
		return &userError{msg: "no pin named " + name, hint: "`cas pins` lists them"}
	}
	if opts.JSON {
		return writeJSON(opts.IO.Out, map[string]any{"unpinned": name, "from": removed})
	}
	fmt.Fprintf(opts.IO.Out, "unpinned %s (%s); its data is kept until GC finds nothing else needs it\n", name, strings.Join(removed, ", "))
	return nil
}

type keygenOptions struct {
	IO      *IOStreams
	Factory *Factory
	Out     string
	JSON    bool
}

func newCmdKeygen(f *Factory) *cobra.Command {
	opts := &keygenOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make an ed25519 key pair for signing pins",
		Long: `Write a new ed25519 key pair: PREFIX.key, the private key (PKCS#8 PEM, mode
0600; keep it secret), and PREFIX.pub, the public key (PKIX PEM) that you
give reviewers. Both are the formats openssl and cosign read. Existing
files are never overwritten. The default PREFIX is
$XDG_CONFIG_HOME/cas/signing (~/.config/cas/signing).`,
		Example: "  cas keygen\n  cas keygen --out keys/lab",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return keygenRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Out, "out", "o", "", "write `PREFIX`.key and PREFIX.pub")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the file names and key ID as JSON")
	return cmd
}

func keygenRun(_ context.Context, opts *keygenOptions) error {
	prefix := opts.Out
	if prefix == "" {
		dir := opts.Factory.Getenv("XDG_CONFIG_HOME")
		if dir == "" {
			home := opts.Factory.Getenv("HOME")
			if home == "" {
				return usageError("no HOME to keep the key in: give --out PREFIX")
			}
			dir = filepath.Join(home, ".config")
		}
		prefix = filepath.Join(dir, "cas", "signing")
	} else if !filepath.IsAbs(prefix) {
		wd, err := opts.Factory.WorkDir()
		if err != nil {
			return err
		}
		prefix = filepath.Join(wd, prefix)
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o700); err != nil {
		return err
	}
	pub, priv, err := attest.GenerateKey()
	if err != nil {
		return err
	}
	privFile, pubFile, err := attest.WriteKeyFiles(prefix, priv)
	if errors.Is(err, attest.ErrKeyExists) {
		return &userError{msg: attestMsg(err) + "; not overwritten", hint: "give another --out PREFIX, or move the old keys away first"}
	}
	if err != nil {
		return err
	}
	id := attest.KeyID(pub)
	if opts.JSON {
		return writeJSON(opts.IO.Out, map[string]string{"private_key": privFile, "public_key": pubFile, "key_id": id})
	}
	fmt.Fprintf(opts.IO.Out, "private key: %s (keep it secret)\npublic key:  %s (give it to reviewers)\nkey id:      %s\n", privFile, pubFile, id)
	return nil
}

// parseRetention reads a retention period: a Go duration (720h) or a
// whole number of days (90d), weeks (2w) or years of 365 days (5y).
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	if n := len(s); n > 1 && unit[s[n-1]] > 0 {
		k, err := strconv.Atoi(s[:n-1])
		if err != nil || k <= 0 || k > 100*365 {
			return 0, errors.New("want a positive number of days (d), weeks (w) or years (y), or a duration such as 720h")
		}
		d = time.Duration(k) * unit[s[n-1]]
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("want a duration such as 90d, 5y or 720h")
		}
	}
	if d < time.Second {
		return 0, errors.New("want at least a second")
	}
	return d, nil
}
