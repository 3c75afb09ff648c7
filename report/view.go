package report

import (
	"fmt"
	"strings"

	"github.com/cas-ml/cas/internal/words"
	"github.com/cas-ml/cas/manifest"
)

// Line is one statement of the verdict: what it is about, its state
// ("ok", "fail", "warn" or "none") and what it says.
type Line struct {
	Key   string `json:"key"`
	State string `json:"state"`
	// Word is the state in one word: PASS, FAIL, UNCHECKED, UNSIGNED,
	// NONE.
	Word string `json:"word"`
	Text string `json:"text"`
}

// Verdict is the top of the page, one line per question a reviewer asks.
func (rep *Report) Verdict() []Line {
	lines := []Line{rep.sigLine(), rep.bytesLine(), rep.rngLine(), rep.reproLine()}
	for i := range lines {
		if lines[i].Word == "" {
			lines[i].Word = stateWord(lines[i].State)
		}
	}
	return lines
}

// OK reports whether nothing in the verdict failed.
func (rep *Report) OK() bool {
	for _, l := range rep.Verdict() {
		if l.State == "fail" {
			return false
		}
	}
	return true
}

func (rep *Report) sigLine() Line {
	l := Line{Key: "signature"}
	if rep.Pin == nil {
		l.State, l.Text = "none", "Not pinned, so not signed: `cas pin NAME "+rep.Run.Digest.Short()+" --sign KEY` publishes it signed"
		return l
	}
	s, name := rep.Pin.Signature, Show(rep.Pin.Name)
	switch s.State {
	case SigChecked:
		l.State = "ok"
		l.Text = fmt.Sprintf("Pin %s is signed by key %s: the signature verifies with that key and the signed statement matches the pin", name, Show(s.KeyID))
		if !s.Signed.IsZero() {
			l.Text += " (signed " + s.Signed.UTC().Format("2006-01-02 15:04 UTC") + ")"
		}
	case SigClaimed:
		l.State = "warn"
		l.Text = fmt.Sprintf("Pin %s carries a signature naming key %s, not checked here: generate the report with --key PUBKEY to check it", name, Show(orDash(s.KeyID)))
	case SigNone:
		l.State, l.Word = "warn", "UNSIGNED"
		l.Text = fmt.Sprintf("Pin %s is not signed", name)
	case SigBadKey:
		l.State = "fail"
		l.Text = fmt.Sprintf("Pin %s is NOT signed by the given key: %s", name, Show(s.Detail))
	default:
		l.State = "fail"
		l.Text = fmt.Sprintf("Pin %s: signature %s: %s: do not trust it", name, strings.ToUpper(s.State), Show(s.Detail))
	}
	return l
}

func (rep *Report) bytesLine() Line {
	l := Line{Key: "bytes"}
	b := rep.Bytes
	switch {
	case b == nil:
		l.State, l.Text = "warn", "Bytes not verified for this report: generate it with --verify to re-read and re-hash everything the run binds"
	case b.OK && b.Files > 0:
		l.State, l.Text = "ok", fmt.Sprintf("Every byte verified: %d files, %s re-read and re-hashed; %d checks passed", b.Files, Size(b.Bytes), b.Checks)
	case b.OK:
		l.State, l.Text = "ok", fmt.Sprintf("Every byte verified: %s of inputs, outputs and recorded objects re-read and re-hashed; %d checks passed", Size(b.Bytes), b.Checks)
	case b.Damaged:
		l.State, l.Text = "fail", fmt.Sprintf("DAMAGED: %d of %d checks failed (see Verification)", b.Failed, b.Checks)
	default:
		l.State, l.Text = "fail", fmt.Sprintf("MISSING: %d of %d checks found data absent from the store read (nothing read was damaged; `cas pull` fetches it)", b.Failed, b.Checks)
	}
	return l
}

func (rep *Report) rngLine() Line {
	l := Line{Key: "rng"}
	cps := map[string]bool{}
	recomputed, bad := 0, 0
	for _, r := range rep.RNG {
		cps[r.Output+"\x00"+r.Checkpoint] = true
		switch r.Checked {
		case "recomputed":
			recomputed++
		case "differs", "missing":
			bad++
		}
	}
	switch {
	case len(rep.RNG) == 0:
		l.State, l.Text = "none", "No RNG state found in the run's checkpoints"
	case bad > 0:
		l.State, l.Text = "fail", fmt.Sprintf("%d of %s in %s do NOT match the stored bytes", bad, words.Count(len(rep.RNG), "RNG state"), words.Count(len(cps), "checkpoint"))
	case recomputed == len(rep.RNG):
		l.State, l.Text = "ok", fmt.Sprintf("%s in %s, fingerprints recomputed from the stored bytes and equal", words.Count(len(rep.RNG), "RNG state"), words.Count(len(cps), "checkpoint"))
	case len(rep.checks) > 0:
		// Verified, yet not recomputed: the checkpoints did not read.
		l.State, l.Text = "warn", fmt.Sprintf("%s in %s, as recorded (not recomputed: the checkpoints' bytes did not read intact, see bytes)", words.Count(len(rep.RNG), "RNG state"), words.Count(len(cps), "checkpoint"))
	default:
		l.State, l.Text = "warn", fmt.Sprintf("%s in %s, as recorded (not recomputed: use --verify)", words.Count(len(rep.RNG), "RNG state"), words.Count(len(cps), "checkpoint"))
	}
	return l
}

func (rep *Report) reproLine() Line {
	l := Line{Key: "reproduction"}
	if rep.Of != nil && rep.Of.Result != nil {
		st, _ := reproState(rep.Of.Result)
		l.State = st
		l.Text = fmt.Sprintf("This run reproduces %s (%s): %s", Show(rep.Of.Name), rep.Of.Digest.Short(), reproText(rep.Of.Result))
		return l
	}
	if !rep.OfUnread.IsZero() {
		l.State = "warn"
		l.Text = fmt.Sprintf("This run reproduces %s, which cannot be read here: not judged (`cas pull %s` brings it)", rep.OfUnread.Short(), rep.OfUnread.Short())
		return l
	}
	pass := 0
	for _, r := range rep.Repros {
		if r.Result.Pass {
			pass++
		}
	}
	switch {
	case len(rep.Repros) == 0:
		l.State, l.Text = "none", "Not reproduced yet: `cas reproduce "+rep.Run.Digest.Short()+"` re-runs it and records the result"
	case len(rep.Repros) == 1:
		r := rep.Repros[0]
		l.State, _ = reproState(r.Result)
		l.Text = fmt.Sprintf("Reproduction %s: %s", Show(r.Name), reproText(r.Result))
	case pass == len(rep.Repros):
		l.State, l.Text = "ok", fmt.Sprintf("All %d reproductions PASS", pass)
	case pass == 0:
		l.State, l.Text = "fail", fmt.Sprintf("All %d reproductions FAIL", len(rep.Repros))
	default:
		l.State, l.Text = "fail", fmt.Sprintf("%d of %d reproductions PASS, %d FAIL", pass, len(rep.Repros), len(rep.Repros)-pass)
	}
	return l
}

// reproText is a reproduction's verdict and why.
func reproText(r *manifest.Reproduction) string {
	s := r.Verdict
	if r.Reason != "" {
		s += ": " + Show(r.Reason)
	}
	within := 0
	for _, m := range r.Metrics {
		if m.Within {
			within++
		}
	}
	return fmt.Sprintf("%s (%d of %d metrics within %s)", s, within, len(r.Metrics), num(r.Tolerance))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// relDiff formats a relative difference.
func relDiff(m manifest.MetricCheck) string {
	if m.New == nil {
		return "-"
	}
	return strconvG(m.RelDiff, 3)
}

func reproduced(m manifest.MetricCheck) string {
	if m.New == nil {
		return "missing"
	}
	return num(*m.New)
}
