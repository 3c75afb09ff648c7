package report

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/words"
	"github.com/cas-ml/cas/manifest"
)

// Options say what a report covers.
type Options struct {
	// Ref names the run: a run name, ref, manifest digest, a pin (NAME
	// or pins/NAME), or a name prefix ending in * for several runs.
	Ref string
	// Runs adds runs to compare (as Ref, prefixes included). Without it,
	// a run named BASE-sSEED (cas run --repeat) brings its siblings.
	Runs []string
	// Metrics limits the distributions to these metrics; default: every
	// metric at least two of the runs have.
	Metrics []string
	// Verify re-reads every byte the run (or pin) binds.
	Verify bool
	// Key checks a pin's signature; without it a signature is shown as
	// claimed, not checked.
	Key ed25519.PublicKey
	// Tolerance is the coefficient of variation repeated runs may have,
	// as cas stats takes it, and the largest relative difference any
	// recorded metric may have in a reproduction, unless the reproduction
	// was run with a smaller one (manifest.JudgeRecorded).
	Tolerance float64
	// Here captures this machine's environment, to compare with the
	// recorded one of m (nil: not compared).
	Here func(m *manifest.Manifest) *Machine
	// Generated is when the report is made; Tool is the cas making it.
	Generated time.Time
	Tool      string
	Progress  *cas.Progress
}

// Machine is an environment as a run would record it, with its package
// list's bytes.
type Machine struct {
	Manifest *manifest.Manifest
	Packages []byte
}

// Report is everything a page shows; HTML and Markdown render it.
type Report struct {
	Generated time.Time `json:"generated"`
	Tool      string    `json:"tool"`
	// Run is the run the report is about; Group the runs compared with
	// it (Run among them), when there are several.
	Run    RunInfo   `json:"run"`
	Group  []RunInfo `json:"runs,omitempty"`
	Pin    *PinInfo  `json:"pin,omitempty"`
	Pins   []PinInfo `json:"pins,omitempty"` // every pin of the run
	Bytes  *Bytes    `json:"verification,omitempty"`
	RNG    []RNGRow  `json:"rng"`
	Repros []Repro   `json:"reproductions"`
	// Of is the verdict of this run against the run it reproduces, when
	// it is a reproduction.
	Of *Repro `json:"reproduction_of,omitempty"`
	// OfUnread is the run this one reproduces when it cannot be read
	// here, so that it is not judged (Of is nil).
	OfUnread digest.Digest           `json:"reproduction_of_unread,omitzero"`
	Metrics  []MetricValue           `json:"metrics"`
	Spread   []*manifest.MetricStats `json:"spread,omitempty"`
	Curves   []Curve                 `json:"curves,omitempty"`
	Nodes    []Node                  `json:"lineage"`
	Env      Env                     `json:"environment"`
	Code     Code                    `json:"code"`
	Notes    []string                `json:"notes,omitempty"`
	Checks   []CheckRow              `json:"checks,omitempty"`
	checks   []manifest.Check
	runNode  int
}

// RunInfo names one run.
type RunInfo struct {
	Name    string             `json:"name"`
	Digest  digest.Digest      `json:"digest"`
	Kind    string             `json:"kind"`
	Status  string             `json:"status"`
	Exit    int                `json:"exit_code"`
	Seed    *int64             `json:"seed"`
	Started time.Time          `json:"started"`
	Seconds float64            `json:"duration_seconds"`
	Command []string           `json:"command"`
	WorkDir string             `json:"workdir"`
	Tool    string             `json:"tool,omitempty"`
	Metrics map[string]float64 `json:"metrics"`
}

// PinInfo is a pin of the run and what is known of its signature.
type PinInfo struct {
	Name      string    `json:"name"`
	Message   string    `json:"message,omitempty"`
	Time      time.Time `json:"time"`
	Signature Signature `json:"signature"`
}

// Signature states.
const (
	SigNone      = "unsigned"
	SigChecked   = "verified"  // checked with the given key
	SigClaimed   = "unchecked" // signed; no key given to check it
	SigAltered   = "altered"   // the pin differs from what was signed
	SigBadKey    = "other key" // signed, but not by the given key
	SigBad       = "invalid"   // the signature does not verify
	SigMalformed = "malformed"
)

// Signature is what a pin's signature says and whether it was checked.
type Signature struct {
	State string `json:"state"`
	// KeyID is the key that verified it (State verified) or the key the
	// statement names (unchecked, unverified).
	KeyID  string    `json:"key_id,omitempty"`
	Signed time.Time `json:"signed,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

// OK reports a signature checked with the given key.
func (s Signature) OK() bool { return s.State == SigChecked }

// Bytes is the outcome of re-reading what the run binds.
type Bytes struct {
	OK      bool  `json:"ok"`
	Damaged bool  `json:"damaged"`
	Missing bool  `json:"missing"`
	Checks  int   `json:"checks"`
	Failed  int   `json:"failed"`
	Files   int64 `json:"files"`
	Bytes   int64 `json:"bytes"`
}

// CheckRow is one line of the verification.
type CheckRow struct {
	State  string `json:"state"` // ok, FAIL, MISSING
	What   string `json:"what"`
	Detail string `json:"detail,omitempty"`
}

// RNGRow is one RNG state found in a checkpoint.
type RNGRow struct {
	Output      string `json:"output"`
	Checkpoint  string `json:"checkpoint"`
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	Fingerprint string `json:"fingerprint"`
	Summary     string `json:"summary"`
	// Checked: "recomputed" when a verification recomputed it from the
	// stored bytes and found it equal, "differs" when not, "" when not
	// verified.
	Checked string `json:"checked,omitempty"`
}

// Repro is one reproduction and its verdict.
type Repro struct {
	Name   string                 `json:"name"`
	Digest digest.Digest          `json:"digest"`
	Result *manifest.Reproduction `json:"result"`
}

// MetricValue is one recorded metric.
type MetricValue struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Build gathers a report on opts.Ref from r.
func Build(ctx context.Context, r *cas.Repo, opts Options) (*Report, error) {
	rep := &Report{Generated: opts.Generated, Tool: opts.Tool, RNG: []RNGRow{}, Repros: []Repro{}}
	var all []manifest.RunEntry
	runs := func() ([]manifest.RunEntry, error) {
		if all != nil {
			return all, nil
		}
		var err error
		all, err = manifest.Runs(ctx, r)
		if len(all) == 0 && err != nil {
			return nil, err
		}
		all = slices.Clip(all)
		if all == nil {
			all = []manifest.RunEntry{}
		}
		return all, nil
	}
	// 1. What the report is about: a pin, a run, or runs.
	var m *manifest.Manifest
	var d digest.Digest
	var pin *cas.Pin
	var group []manifest.RunEntry
	switch {
	case strings.HasSuffix(opts.Ref, "*"):
		es, err := runs()
		if err != nil {
			return nil, err
		}
		group = matchPrefix(es, opts.Ref)
		if len(group) == 0 {
			return nil, &NoMatchError{Pattern: opts.Ref}
		}
		sortBySeed(group)
		m, d = group[0].Manifest, group[0].Digest
	default:
		p, err := findPin(ctx, r, opts.Ref)
		if err != nil && !errors.Is(err, cas.ErrNotFound) {
			return nil, err
		}
		if err == nil && p.Type == cas.TypeManifest {
			pin = p
			if m, err = manifest.Load(ctx, r, p.Target); err != nil {
				return nil, fmt.Errorf("pin %s: %w", p.Name, err)
			}
			d = p.Target
		} else {
			if m, d, err = manifest.Resolve(ctx, r, opts.Ref); err != nil {
				return nil, err
			}
		}
	}
	rep.Run = runInfo(m, d)
	for _, name := range slices.Sorted(maps.Keys(m.Metrics)) {
		rep.Metrics = append(rep.Metrics, MetricValue{name, m.Metrics[name]})
	}
	// 2. The runs compared with it.
	if len(group) == 0 {
		var err error
		if group, err = siblings(ctx, r, runs, m, d, opts.Runs); err != nil {
			return nil, err
		}
	}
	if len(group) > 1 {
		for _, e := range group {
			rep.Group = append(rep.Group, runInfo(e.Manifest, e.Digest))
		}
		spread, err := summarize(group, opts.Metrics, opts.Tolerance)
		if err != nil {
			return nil, err
		}
		rep.Spread = spread
	} else if len(opts.Metrics) > 0 {
		return nil, fmt.Errorf("%w: --metric compares runs, and %s is one run", manifest.ErrTooFewRuns, opts.Ref)
	}
	// 3. Pins and signatures.
	pins, err := r.Pins(ctx, nil)
	var partial *cas.PartialError
	if err != nil && !errors.As(err, &partial) {
		return nil, err
	}
	var first *cas.Pin // the first pin of the run, when it was not asked for by name
	for _, p := range pins {
		if p.Target == d {
			rep.Pins = append(rep.Pins, pinInfo(p, opts.Key))
			if first == nil {
				first = p
			}
		}
	}
	if pin != nil {
		pi := pinInfo(pin, opts.Key)
		rep.Pin = &pi
	} else if first != nil {
		rep.Pin = &rep.Pins[0]
		pin = first
	}
	// 4. The bytes, re-read when asked.
	if opts.Verify {
		if err := rep.verify(ctx, r, m, d, pin, opts.Progress); err != nil {
			return nil, err
		}
	}
	rep.rng(m)
	// 5. Reproductions, and what this one reproduces.
	es, err := runs()
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if e.Manifest.Kind == "reproduction" && e.Manifest.ReproductionOf == d {
			res := manifest.JudgeRecorded(ctx, r, m, d, e.Manifest, e.Digest, e.Ref, opts.Tolerance)
			rep.Repros = append(rep.Repros, Repro{Name: e.Manifest.Name, Digest: e.Digest, Result: res})
		}
	}
	slices.SortFunc(rep.Repros, func(a, b Repro) int { return strings.Compare(a.Name, b.Name) })
	if m.Kind == "reproduction" && !m.ReproductionOf.IsZero() {
		if orig, err := manifest.Load(ctx, r, m.ReproductionOf); err == nil {
			res := manifest.JudgeRecorded(ctx, r, orig, m.ReproductionOf, m, d, "", opts.Tolerance)
			rep.Of = &Repro{Name: orig.Name, Digest: m.ReproductionOf, Result: res}
		} else {
			rep.OfUnread = m.ReproductionOf
			rep.Notes = append(rep.Notes, fmt.Sprintf("this run reproduces %s, which cannot be read here: %v", m.ReproductionOf.Short(), err))
		}
	}
	// 6. Curves, environment, code, lineage.
	if err := rep.curves(ctx, r); err != nil {
		rep.Notes = append(rep.Notes, "metrics history: "+err.Error())
	}
	var here *Machine
	if opts.Here != nil {
		here = opts.Here(m)
	}
	rep.environment(ctx, r, m, here)
	rep.code(ctx, r, m)
	rep.lineage(m, d)
	return rep, nil
}

// NoMatchError reports a name prefix no run has.
type NoMatchError struct{ Pattern string }

func (e *NoMatchError) Error() string {
	return "no run name starts with " + strings.TrimSuffix(e.Pattern, "*")
}

func runInfo(m *manifest.Manifest, d digest.Digest) RunInfo {
	return RunInfo{Name: m.Name, Digest: d, Kind: m.Kind, Status: m.Status, Exit: m.ExitCode, Seed: m.Seeds.Seed,
		Started: m.Started, Seconds: m.Seconds, Command: m.Command, WorkDir: m.WorkDir, Tool: m.Tool, Metrics: m.Metrics}
}

// findPin reads the pin ref names, if it names one.
func findPin(ctx context.Context, r *cas.Repo, ref string) (*cas.Pin, error) {
	name := strings.TrimPrefix(ref, cas.PinPrefix)
	if !cas.ValidRefName(name) {
		return nil, fmt.Errorf("pin %q: %w", ref, cas.ErrNotFound)
	}
	return r.GetPin(ctx, nil, name)
}

// matchPrefix picks the runs whose name starts with pattern less its *.
func matchPrefix(es []manifest.RunEntry, pattern string) []manifest.RunEntry {
	prefix := strings.TrimPrefix(strings.TrimSuffix(pattern, "*"), manifest.RefPrefix)
	var out []manifest.RunEntry
	for _, e := range es {
		if strings.HasPrefix(e.Manifest.Name, prefix) && e.Manifest.Kind != "reproduction" {
			out = append(out, e)
		}
	}
	return out
}

// repeatName is the name cas run --repeat gives: BASE-sSEED.
var repeatName = regexp.MustCompile(`^(.+)-s-?[0-9]+$`)

// siblings are the runs compared with m: those extra names, or, without
// them, the other runs of the same cas run --repeat.
func siblings(ctx context.Context, r *cas.Repo, runs func() ([]manifest.RunEntry, error), m *manifest.Manifest, d digest.Digest, extra []string) ([]manifest.RunEntry, error) {
	group := []manifest.RunEntry{{Ref: manifest.RefPrefix + m.Name, Digest: d, Manifest: m}}
	seen := map[digest.Digest]bool{d: true}
	add := func(e manifest.RunEntry) {
		if !seen[e.Digest] {
			seen[e.Digest] = true
			group = append(group, e)
		}
	}
	if len(extra) == 0 {
		sub := repeatName.FindStringSubmatch(m.Name)
		if sub == nil {
			return group, nil
		}
		es, err := runs()
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if s := repeatName.FindStringSubmatch(e.Manifest.Name); s != nil && s[1] == sub[1] && e.Manifest.Kind != "reproduction" {
				add(e)
			}
		}
		sortBySeed(group)
		return group, nil
	}
	for _, ref := range extra {
		if strings.HasSuffix(ref, "*") {
			es, err := runs()
			if err != nil {
				return nil, err
			}
			match := matchPrefix(es, ref)
			if len(match) == 0 {
				return nil, &NoMatchError{Pattern: ref}
			}
			for _, e := range match {
				add(e)
			}
			continue
		}
		om, od, err := manifest.Resolve(ctx, r, ref)
		if err != nil {
			return nil, err
		}
		add(manifest.RunEntry{Ref: ref, Digest: od, Manifest: om})
	}
	return group, nil
}

// sortBySeed orders runs by seed, then name.
func sortBySeed(es []manifest.RunEntry) {
	slices.SortStableFunc(es, func(a, b manifest.RunEntry) int {
		sa, sb := a.Manifest.Seeds.Seed, b.Manifest.Seeds.Seed
		switch {
		case sa != nil && sb != nil && *sa != *sb:
			if *sa < *sb {
				return -1
			}
			return 1
		case sa == nil && sb != nil:
			return 1
		case sa != nil && sb == nil:
			return -1
		}
		return strings.Compare(a.Manifest.Name, b.Manifest.Name)
	})
}

// summarize is cas stats --metric over the group: the same numbers.
func summarize(group []manifest.RunEntry, names []string, tol float64) ([]*manifest.MetricStats, error) {
	seedsDiffer := false
	count := map[string]int{}
	for _, e := range group {
		seedsDiffer = seedsDiffer || !reflect.DeepEqual(e.Manifest.Seeds, group[0].Manifest.Seeds)
		for k := range e.Manifest.Metrics {
			count[k]++
		}
	}
	if len(names) == 0 {
		for _, k := range slices.Sorted(maps.Keys(count)) {
			if count[k] >= 2 {
				names = append(names, k)
			}
		}
	}
	var out []*manifest.MetricStats
	for _, name := range names {
		var vals []float64
		for _, e := range group {
			if v, ok := e.Manifest.Metrics[name]; ok {
				vals = append(vals, v)
			}
		}
		s, err := manifest.Summarize(name, vals, tol, seedsDiffer)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// verify re-reads what the run binds: through the pin when there is one
// (every object of its closure), else the run's own checks.
func (rep *Report) verify(ctx context.Context, r *cas.Repo, m *manifest.Manifest, d digest.Digest, pin *cas.Pin, prog *cas.Progress) error {
	var checks []manifest.Check
	b := &Bytes{}
	if pin != nil {
		vr, cs, err := manifest.VerifyPin(ctx, r, pin, prog)
		if err != nil {
			return err
		}
		checks = cs
		b.Files, b.Bytes = vr.Files, vr.Bytes
		b.Damaged = vr.Damaged()
		for _, p := range vr.Problems {
			b.Missing = b.Missing || p.Missing
		}
	} else {
		cs, err := manifest.Verify(ctx, r, m, d)
		if err != nil {
			return err
		}
		checks = cs
		for _, p := range m.Parts() {
			b.Bytes += p.Size
		}
	}
	rep.checks = checks
	for _, c := range checks {
		row := CheckRow{State: "ok", What: c.What, Detail: c.Detail}
		if !c.OK {
			b.Failed++
			row.State = "FAIL"
			if c.Missing {
				row.State = "MISSING"
				b.Missing = true
			} else {
				b.Damaged = true
			}
		}
		rep.Checks = append(rep.Checks, row)
	}
	b.Checks = len(checks)
	b.OK = b.Failed == 0 && !b.Damaged && !b.Missing
	if pin == nil && !b.OK {
		b.Bytes = 0 // not every byte was intact: claim none
	}
	rep.Bytes = b
	return nil
}

// rng lists the RNG states of every checkpoint, marked as recomputed
// where a verification checked them.
func (rep *Report) rng(m *manifest.Manifest) {
	for _, a := range m.Outputs {
		for _, cp := range a.Checkpoints {
			// The check manifest.Verify made of this checkpoint, if any.
			what := fmt.Sprintf("checkpoint %s/%s: %s, %s", a.Name, cp.Path, words.Count(cp.Tensors, "tensor"), words.Count(len(cp.RNG), "RNG state"))
			state := ""
			for _, c := range rep.checks {
				if c.Kind == manifest.CheckCheckpoint && c.What == what {
					switch {
					case c.OK:
						state = "recomputed"
					case c.Missing:
						state = "missing"
					default:
						state = "differs"
					}
				}
			}
			for _, s := range cp.RNG {
				rep.RNG = append(rep.RNG, RNGRow{Output: a.Name, Checkpoint: cp.Path, Kind: s.Kind, Path: s.Path,
					Fingerprint: s.Fingerprint, Summary: s.Summary, Checked: state})
			}
		}
	}
}
