package report

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/manifest/attest"
)

// pinInfo reads what pin p's signature says: checked with key when one
// is given, else only what the statement claims (never trusted).
func pinInfo(p *cas.Pin, key ed25519.PublicKey) PinInfo {
	pi := PinInfo{Name: p.Name, Message: p.Message, Time: p.Time, Signature: Signature{State: SigNone}}
	if !p.Signed() {
		return pi
	}
	sig := &pi.Signature
	st, err := attest.Peek(p.Envelope)
	if err == nil {
		err = checkSigned(st, p)
	}
	switch {
	case errors.Is(err, attest.ErrMalformed):
		*sig = Signature{State: SigMalformed, Detail: attestMsg(err)}
		return pi
	case err != nil:
		*sig = Signature{State: SigAltered, Detail: attestMsg(err)}
	default:
		*sig = Signature{State: SigClaimed, KeyID: cmp.Or(st.Predicate.Signer, envelopeKeyID(p.Envelope)), Signed: st.Predicate.Time}
		pi.Time = st.Predicate.Time // the signed time (a statement before 2026-12 has its own)
	}
	if key == nil {
		return pi
	}
	vst, err := attest.Verify(p.Envelope, key)
	if err == nil {
		err = checkSigned(vst, p)
	}
	switch {
	case errors.Is(err, attest.ErrWrongKey):
		*sig = Signature{State: SigBadKey, KeyID: sig.KeyID, Detail: attestMsg(err)}
	case errors.Is(err, attest.ErrBadSignature), errors.Is(err, attest.ErrMalformed):
		*sig = Signature{State: SigBad, Detail: attestMsg(err)}
	case err != nil:
		*sig = Signature{State: SigAltered, Detail: attestMsg(err)}
	default:
		*sig = Signature{State: SigChecked, KeyID: attest.KeyID(key), Signed: vst.Predicate.Time}
	}
	return pi
}

// checkSigned checks that what the pin shows is what st says, as cas
// verify --key does: names, target, message, time, retention, kind, type
// and size.
func checkSigned(st *attest.Statement, p *cas.Pin) error {
	return st.CheckShown(attest.Shown{Names: []string{p.Name, p.StoredName}, Target: p.Target, Message: p.Message,
		Time: p.Time, Kind: p.Kind.String(), Type: p.Type, Size: p.Size, RetainUntil: p.RetainUntil})
}

// envelopeKeyID is the key ID the envelope's first signature names (a
// hint, not authenticated).
func envelopeKeyID(env []byte) string {
	var e attest.Envelope
	if json.Unmarshal(env, &e) != nil || len(e.Signatures) == 0 {
		return ""
	}
	return e.Signatures[0].KeyID
}

func attestMsg(err error) string {
	var ae *attest.Error
	if errors.As(err, &ae) {
		return ae.Err.Error()
	}
	return err.Error()
}

// Env is the recorded environment, compared with this machine's.
type Env struct {
	Rows []EnvRow `json:"rows"`
	Vars []EnvRow `json:"variables"`
	// Compared: this machine's environment was captured and compared;
	// Diffs lists how it differs (empty: it matches).
	Compared bool                  `json:"compared"`
	Diffs    []manifest.Difference `json:"differences,omitempty"`
	// Here is this machine's host name, when compared.
	Here string `json:"here,omitempty"`
}

// EnvRow is one line of the environment; Here is this machine's value
// where it differs.
type EnvRow struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Differs bool   `json:"differs,omitempty"`
	Here    string `json:"here,omitempty"`
}

// environment lists the recorded environment and, with here, how this
// machine differs (manifest.EnvDiff, as cas env diff says it).
func (rep *Report) environment(ctx context.Context, r *cas.Repo, m *manifest.Manifest, here *Machine) {
	e := m.Environment
	row := func(key, val string) { rep.Env.Rows = append(rep.Env.Rows, EnvRow{Key: key, Value: val}) }
	row("os", strings.TrimSpace(e.OS+" "+e.Kernel))
	row("arch", e.Arch)
	row("hostname", e.Hostname)
	row("cpu", fmt.Sprintf("%s x%d", e.CPU, e.CPUs))
	row("memory", Size(e.MemoryBytes))
	if e.Python != nil {
		py := e.Python.Version + " (" + e.Python.Executable + ")"
		if e.Python.NumPy != "" {
			py += ", numpy " + e.Python.NumPy
		}
		row("python", py)
	} else {
		row("python", "-")
	}
	pk := "-"
	if e.Packages != nil {
		pk = fmt.Sprintf("%d (%s), list %s", e.PackageCount, cmp.Or(e.PackageManager, "-"), e.Packages.Digest.Short())
	}
	row("packages", pk)
	if t := e.Torch; t != nil {
		row("torch", fmt.Sprintf("%s, CUDA %s, cuDNN %s", t.Version, cmp.Or(t.CUDA, "-"), cmp.Or(t.CuDNN, "-")))
		row("determinism", fmt.Sprintf("deterministic algorithms %v, cudnn deterministic %v, cudnn benchmark %v (%s)",
			t.Deterministic, t.CuDNNDeterministic, t.CuDNNBenchmark, cmp.Or(t.SettingsFrom, "probed")))
	} else {
		row("torch", "-")
	}
	var gpus []string
	for _, g := range e.GPUs {
		gpus = append(gpus, fmt.Sprintf("%s, driver %s, %s", g.Name, g.Driver, Size(g.MemoryBytes)))
	}
	row("gpus", cmp.Or(strings.Join(gpus, "; "), "none"))
	if len(e.Absent) > 0 {
		row("absent", strings.Join(e.Absent, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Variables)) {
		rep.Env.Vars = append(rep.Env.Vars, EnvRow{Key: k, Value: m.Variables[k]})
	}
	if here == nil {
		return
	}
	recPkgs, _ := manifest.LoadObject(ctx, r, m.Environment.Packages, 64<<20)
	rep.Env.Compared = true
	rep.Env.Here = here.Manifest.Environment.Hostname
	rep.Env.Diffs = manifest.EnvDiff(m, here.Manifest, recPkgs, here.Packages)
	for _, d := range rep.Env.Diffs {
		rows, key := rep.Env.Rows, d.Key
		switch d.Section {
		case "packages":
			key = "packages"
		case "variables":
			rows = rep.Env.Vars
		}
		for i := range rows {
			if rows[i].Key == key {
				rows[i].Differs = true
				if d.Section != "packages" {
					rows[i].Here = cmp.Or(d.B, "-")
				}
			}
		}
	}
}

// Code is the recorded state of the code.
type Code struct {
	Git       bool          `json:"git"`
	Reason    string        `json:"reason,omitempty"`
	Commit    string        `json:"commit,omitempty"`
	Branch    string        `json:"branch,omitempty"`
	Remote    string        `json:"remote,omitempty"`
	Dirty     bool          `json:"dirty"`
	Untracked []string      `json:"untracked"`
	Patch     digest.Digest `json:"patch,omitzero"`
	PatchSize int64         `json:"patch_size"`
	// Diff is the recorded diff's text, up to maxDiff bytes (Truncated
	// when cut); DiffErr says why it could not be read.
	Diff      string `json:"-"`
	Truncated bool   `json:"-"`
	DiffErr   string `json:"-"`
}

// maxDiff bounds the diff shown inline.
const maxDiff = 512 << 10

func (rep *Report) code(ctx context.Context, r *cas.Repo, m *manifest.Manifest) {
	c := m.Code
	rep.Code = Code{Git: c.Git, Reason: c.Reason, Commit: c.Commit, Branch: c.Branch, Remote: c.Remote, Dirty: c.Dirty, Untracked: c.Untracked}
	if c.Patch == nil {
		return
	}
	rep.Code.Patch, rep.Code.PatchSize = c.Patch.Digest, c.Patch.Size
	b, err := r.ReadObject(ctx, c.Patch.Digest, 1<<30)
	if err != nil {
		rep.Code.DiffErr = err.Error()
		return
	}
	if len(b) > maxDiff {
		b, rep.Code.Truncated = b[:maxDiff], true
	}
	rep.Code.Diff = ShowBlock(strings.ToValidUTF8(string(b), "\uFFFD"))
}
