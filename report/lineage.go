package report

import (
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/internal/words"
	"github.com/cas-ml/cas/manifest"
)

// Node is one box of the lineage picture: an input, the run, an output,
// a checkpoint, a pin, a reproduction, or the run this one reproduces.
type Node struct {
	ID     string        `json:"id"` // the anchor of its restore command
	Kind   string        `json:"kind"`
	Name   string        `json:"name"`
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	// Path is where the run had it, as recorded.
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail,omitempty"`
	// State colours the box: "ok", "fail" or "".
	State string `json:"state,omitempty"`
	// Restore is the command that brings it back.
	Restore string `json:"restore"`
	// From is the index of the node its edge comes from (-1: none);
	// Into: its edge goes into the run instead.
	From int  `json:"-"`
	Into bool `json:"-"`
	col  int
	row  int
}

// Node kinds.
const (
	NodeInput        = "input"
	NodeRun          = "run"
	NodeOutput       = "output"
	NodeCheckpoint   = "checkpoint"
	NodePin          = "pin"
	NodeReproduction = "reproduction"
	NodeOriginal     = "reproduces"
)

// lineage lays out inputs → run → outputs/checkpoints → pins and
// reproductions: four columns, each node in a row of its own column.
func (rep *Report) lineage(m *manifest.Manifest, d digest.Digest) {
	var nodes []Node
	add := func(n Node, col, row int) int {
		n.ID, n.col, n.row = fmt.Sprintf("node-%d", len(nodes)+1), col, row
		nodes = append(nodes, n)
		return len(nodes) - 1
	}
	row0 := 0
	for _, in := range m.Inputs {
		add(Node{Kind: NodeInput, Name: in.Name, Digest: in.Digest, Size: in.Size, Path: in.Path, Detail: in.Kind,
			Restore: restoreCmd(in.Digest.String(), in.Name), From: -1, Into: true}, 0, row0)
		row0++
	}
	if rep.Of != nil {
		st, detail := reproState(rep.Of.Result)
		add(Node{Kind: NodeOriginal, Name: rep.Of.Name, Digest: rep.Of.Digest, Detail: detail, State: st,
			Restore: "cas show " + rep.Of.Digest.String(), From: -1, Into: true}, 0, row0)
		row0++
	}
	runState := ""
	if m.Status != "ok" {
		runState = "fail"
	}
	run := add(Node{Kind: NodeRun, Name: m.Name, Digest: d, Detail: fmt.Sprintf("%s, exit %d", m.Status, m.ExitCode),
		State: runState, Restore: "cas reproduce " + d.String(), From: -1}, 1, 0)
	row2 := 0
	for _, o := range m.Outputs {
		out := add(Node{Kind: NodeOutput, Name: o.Name, Digest: o.Digest, Size: o.Size, Path: o.Path, Detail: o.Kind,
			Restore: restoreCmd(o.Digest.String(), o.Name), From: run}, 2, row2)
		for j, cp := range o.Checkpoints {
			st := ""
			for _, g := range rep.RNG {
				if g.Output == o.Name && g.Checkpoint == cp.Path {
					switch g.Checked {
					case "recomputed":
						st = "ok"
					case "differs", "missing":
						st = "fail"
					}
				}
			}
			add(Node{Kind: NodeCheckpoint, Name: cp.Path, Digest: cp.Digest, Path: cp.Path,
				Detail: fmt.Sprintf("%s, %s, %s", cp.Format, words.Count(cp.Tensors, "tensor"), words.Count(len(cp.RNG), "RNG state")), State: st,
				Restore: restoreCmd(cp.Digest.String(), lastElem(cp.Path)), From: out}, 3, row2+j)
		}
		row2 += max(1, len(o.Checkpoints))
	}
	for _, p := range rep.Pins {
		st := ""
		switch p.Signature.State {
		case SigChecked:
			st = "ok"
		case SigAltered, SigBad, SigBadKey, SigMalformed:
			st = "fail"
		}
		add(Node{Kind: NodePin, Name: p.Name, Digest: d, Detail: "signature " + p.Signature.State, State: st,
			Restore: "cas pull " + "pins/" + p.Name, From: run}, 2, row2)
		row2++
	}
	for _, rp := range rep.Repros {
		st, detail := reproState(rp.Result)
		add(Node{Kind: NodeReproduction, Name: rp.Name, Digest: rp.Digest, Detail: detail, State: st,
			Restore: "cas show " + rp.Digest.String(), From: run}, 2, row2)
		row2++
	}
	// The run sits level with the middle of what surrounds it.
	nodes[run].row = (max(row0, row2, 1) - 1) / 2
	rep.Nodes = nodes
	rep.runNode = run
}

// reproState is a reproduction's box colour and its verdict line.
func reproState(r *manifest.Reproduction) (string, string) {
	if r == nil {
		return "", ""
	}
	if r.Pass {
		return "ok", r.Verdict
	}
	return "fail", r.Verdict
}

// restoreCmd is the command that restores the object d names into a
// path named after name, with every character a shell might read
// replaced: a command made of a digest and plain words, safe to paste.
func restoreCmd(d, name string) string {
	return "cas restore " + d + " restored/" + safeName(name)
}

// safeName keeps letters, digits, '.', '-' and '_' of name; anything else
// becomes '_' (and a leading dot too), so the result is a plain word.
func safeName(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		case c == '.' && b.Len() > 0:
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

func lastElem(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Size formats a size for people: 1.5 MiB.
func Size(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.IBytes(uint64(n))
}
