package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A signed pin whose message is edited after signing (as a bucket's owner
// could) is shown as altered by `cas pins` and fails `cas verify --key`,
// naming the field: nothing shown for a signed pin is unsigned.
func TestSignedPinAlteredMessage(t *testing.T) {
	dir := t.TempDir()
	mustCas(t, dir, "init")
	if err := os.WriteFile(filepath.Join(dir, "result.txt"), []byte("0.93\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCas(t, dir, "keygen", "--out", filepath.Join(dir, "me"))
	mustCas(t, dir, "push", "-q", filepath.Join(dir, "result.txt"), "--name", "result")
	mustCas(t, dir, "pin", "--local", "paper/table1", "result", "--sign", filepath.Join(dir, "me.key"), "-m", "Table 1, seed 1")
	if out := mustCas(t, dir, "pins"); !strings.Contains(out, "signed  Table 1, seed 1") {
		t.Fatalf("cas pins before the edit:\n%s", out)
	}
	mustCas(t, dir, "verify", "paper/table1", "--key", filepath.Join(dir, "me.pub"))

	pin := filepath.Join(dir, ".cas", "store", "pins", "paper", "table1")
	b, err := os.ReadFile(pin)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`"Table 1, seed 1"`), []byte(`"Table 1, seed 2 (best of 10)"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("the pin file holds no message to edit")
	}
	if err := os.Chmod(pin, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pin, edited, 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := casIn(t, dir, "pins")
	if code != 3 || !strings.Contains(out, "ALTERED") || strings.Contains(out, "signed  Table 1, seed 2") {
		t.Errorf("cas pins after the edit: exit %d\n%s%s\nwant exit 3 and the pin shown as ALTERED", code, out, errs)
	}
	if !strings.Contains(errs, "message") {
		t.Errorf("cas pins after the edit: stderr %q does not name the message", errs)
	}
	code, out, errs = casIn(t, dir, "verify", "paper/table1", "--key", filepath.Join(dir, "me.pub"))
	if code != 3 || !strings.Contains(errs, "message") || !strings.Contains(errs, "seed 2 (best of 10)") {
		t.Errorf("cas verify --key after the edit: exit %d\n%s%s\nwant exit 3 naming the message", code, out, errs)
	}

	// The size shown is signed too.
	resized := bytes.Replace(b, []byte(`"size": 5,`), []byte(`"size": 50,`), 1)
	if bytes.Equal(resized, b) {
		t.Fatalf("the pin file holds no size 5 to edit:\n%s", b)
	}
	if err := os.WriteFile(pin, resized, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = casIn(t, dir, "verify", "paper/table1", "--key", filepath.Join(dir, "me.pub"))
	if code != 3 || !strings.Contains(errs, "size 50 differs from the signed statement, which says 5") {
		t.Errorf("cas verify --key after editing the size: exit %d\n%s%s\nwant exit 3 naming the size", code, out, errs)
	}
}

// Every field cas shows of a signed pin is signed: editing any of them in
// the stored pin (its name, target, time, message, kind or size) makes
// `cas verify` fail, with or without --key, naming the field; `cas pins`
// flags it ALTERED, and its JSON says so.
func TestSignedPinEveryShownFieldIsSigned(t *testing.T) {
	dir := t.TempDir()
	mustCas(t, dir, "init")
	if err := os.WriteFile(filepath.Join(dir, "result.txt"), []byte("0.93\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte("0.99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCas(t, dir, "keygen", "--out", filepath.Join(dir, "me"))
	mustCas(t, dir, "push", "-q", filepath.Join(dir, "result.txt"), "--name", "result")
	other := strings.Fields(mustCas(t, dir, "hash", filepath.Join(dir, "other.txt")))[0]
	mustCas(t, dir, "push", "-q", filepath.Join(dir, "other.txt"), "--name", "other")
	mustCas(t, dir, "pin", "--local", "paper/t1", "result", "--sign", filepath.Join(dir, "me.key"), "-m", "Table 1")
	pin := filepath.Join(dir, ".cas", "store", "pins", "paper", "t1")
	orig, err := os.ReadFile(pin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pin, 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustCas(t, dir, "pins", "--json")
	if !strings.Contains(out, `"signed": true`) || strings.Contains(out, `"altered"`) {
		t.Errorf("cas pins --json of an intact signed pin:\n%s\nwant \"signed\": true and nothing altered", out)
	}
	mustCas(t, dir, "verify", "paper/t1", "--key", filepath.Join(dir, "me.pub"))
	mustCas(t, dir, "verify", "paper/t1")

	for _, c := range []struct{ field, re, with string }{
		{"name", `"name": "[^"]*"`, `"name": "paper/t2"`},
		{"time", `"time": "[^"]*"`, `"time": "2020-02-03T04:05:06.789Z"`},
		{"message", `"message": "[^"]*"`, `"message": "Table 1, best of 10"`},
		{"kind", `"kind": "file"`, `"kind": "exec"`},
		{"size", `"size": 5,`, `"size": 50,`},
		{"target", `"target": "[^"]*"`, `"target": "` + other + `"`},
	} {
		t.Run(c.field, func(t *testing.T) {
			edited := regexp.MustCompile(c.re).ReplaceAll(orig, []byte(c.with))
			if bytes.Equal(edited, orig) {
				t.Fatalf("%s not found in the pin:\n%s", c.re, orig)
			}
			if err := os.WriteFile(pin, edited, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(pin, orig, 0o644)
			for _, key := range [][]string{{"--key", filepath.Join(dir, "me.pub")}, nil} {
				code, out, errs := casIn(t, dir, append([]string{"verify", "paper/t1"}, key...)...)
				if code != 3 || !regexp.MustCompile(`(?m)^cas: pin paper/t1: `+c.field+` .*(differs from the signed statement|statement names)`).MatchString(errs) {
					t.Errorf("cas verify %v after editing the %s: exit %d\n%s%s\nwant exit 3 naming the %s", key, c.field, code, out, errs, c.field)
				}
			}
			code, out, errs := casIn(t, dir, "pins")
			if code != 3 || !strings.Contains(out, "ALTERED") || !strings.Contains(errs, c.field) {
				t.Errorf("cas pins after editing the %s: exit %d\n%s%s\nwant exit 3, ALTERED, naming the %s", c.field, code, out, errs, c.field)
			}
			code, out, errs = casIn(t, dir, "pins", "--json")
			if code != 3 || !strings.Contains(out, `"signed": true`) || !strings.Contains(out, `"altered": "`+c.field) {
				t.Errorf("cas pins --json after editing the %s: exit %d\n%s%s\nwant \"altered\" naming the %s", c.field, code, out, errs, c.field)
			}
		})
	}
}
