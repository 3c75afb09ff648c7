package schema

import (
	"strings"
	"testing"

	"github.com/cas-ml/cas/digest"
)

func d(s string) digest.Digest { return digest.Of([]byte(s)) }

func TestPartsListEveryReference(t *testing.T) {
	m := &Manifest{
		Inputs:         []Artifact{{Name: "train", Digest: d("train"), Size: 3}},
		Outputs:        []Artifact{{Name: "model", Digest: d("model"), Size: 4}},
		Code:           Code{Patch: &Object{Digest: d("patch"), Size: 5}},
		Environment:    Environment{Packages: &Object{Digest: d("pkgs"), Size: 6}},
		Config:         &Object{Digest: d("cfg"), Size: 7},
		Logs:           Logs{Stdout: &Object{Digest: d("out"), Size: 8}, Stderr: &Object{Digest: d("err"), Size: 9}},
		MetricsHistory: &History{Object: Object{Digest: d("hist"), Size: 10}, Records: 2, Names: []string{"loss"}},
		ReproductionOf: d("orig"),
	}
	var got []string
	for _, p := range m.Parts() {
		got = append(got, p.String()+"="+p.Digest.Short())
	}
	want := []string{"input train=" + d("train").Short(), "output model=" + d("model").Short(),
		"code patch=" + d("patch").Short(), "package list=" + d("pkgs").Short(), "config=" + d("cfg").Short(),
		"stdout log=" + d("out").Short(), "stderr log=" + d("err").Short(),
		"metrics history=" + d("hist").Short(), "reproduced manifest=" + d("orig").Short()}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Parts:\n got %v\nwant %v", got, want)
	}
	if n := len((&Manifest{}).Parts()); n != 0 {
		t.Errorf("an empty manifest has %d parts", n)
	}
}

// TestWalkFollowsReproductions: the closure takes in the manifests a run
// reproduces, transitively, each digest once, and never the walked one
// (a reproduction that claims to reproduce itself does not loop).
func TestWalkFollowsReproductions(t *testing.T) {
	shared := Artifact{Name: "train", Digest: d("train")}
	first := &Manifest{Inputs: []Artifact{shared}, Outputs: []Artifact{{Name: "m", Digest: d("m1")}}}
	second := &Manifest{Inputs: []Artifact{shared}, Outputs: []Artifact{{Name: "m", Digest: d("m2")}}, ReproductionOf: d("first")}
	third := &Manifest{Inputs: []Artifact{shared}, ReproductionOf: d("second"), Config: &Object{Digest: d("third")}}
	byDigest := map[digest.Digest]*Manifest{d("first"): first, d("second"): second}
	var got []string
	Walk(third, d("third"), func(p Part) *Manifest {
		got = append(got, p.String()+"@"+p.Of.Short())
		return byDigest[p.Digest]
	})
	want := []string{
		"input train@" + d("third").Short(), "reproduced manifest@" + d("third").Short(),
		"output m@" + d("second").Short(), "reproduced manifest@" + d("second").Short(),
		"output m@" + d("first").Short(),
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Walk:\n got %v\nwant %v", got, want)
	}
}

// TestTypedDigestsKeepTheJSON: digests are digest.Digest in Go and the
// same strings in JSON; a manifest with no reproduction_of has none.
func TestTypedDigestsKeepTheJSON(t *testing.T) {
	m := &Manifest{Schema: Schema, Inputs: []Artifact{{Name: "x", Digest: d("x"), Kind: "file"}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"digest":"`+d("x").String()+`"`) || strings.Contains(string(b), "reproduction_of") {
		t.Errorf("encoded %s", b)
	}
	back, err := Parse(b)
	if err != nil || back.Inputs[0].Digest != d("x") || !back.ReproductionOf.IsZero() {
		t.Fatalf("Parse: %v %+v", err, back)
	}
	bad := strings.Replace(string(b), d("x").String(), "blake3:zz", 1)
	if _, err := Parse([]byte(bad)); err == nil {
		t.Errorf("Parse took a malformed digest")
	}
}
