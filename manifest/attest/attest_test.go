package attest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
)

// TestPAE checks the encoding against the DSSE spec's own example
// (protocol.md) and the edge cases of empty fields.
func TestPAE(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, typ, body, want string
	}{
		{"spec vector", "http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"empty", "", "", "DSSEv1 0  0 "},
		{"multibyte", "t", "ü", "DSSEv1 1 t 2 ü"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(PAE(tt.typ, []byte(tt.body))); got != tt.want {
				t.Errorf("PAE(%q, %q) = %q, want %q", tt.typ, tt.body, got, tt.want)
			}
		})
	}
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

var target = digest.Of([]byte("a manifest"))

func signed(t *testing.T, priv ed25519.PrivateKey) []byte {
	t.Helper()
	st := NewPinStatement("paper/fig3", target, "Figure 3", time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC), "")
	env, err := Sign(st, priv)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	env := signed(t, priv)
	st, err := Verify(env, pub)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := st.CheckSubject("paper/fig3", target); err != nil {
		t.Errorf("CheckSubject: %v", err)
	}
	if got, want := st.Predicate.Signer, KeyID(pub); got != want {
		t.Errorf("signer = %q, want %q", got, want)
	}
	if err := st.CheckSubject("paper/fig4", target); !errors.Is(err, ErrSubject) {
		t.Errorf("CheckSubject of another name: got %v, want ErrSubject", err)
	}
	if err := st.CheckSubject("paper/fig3", digest.Of(nil)); !errors.Is(err, ErrSubject) {
		t.Errorf("CheckSubject of another target: got %v, want ErrSubject", err)
	}
	// The layout the ecosystem reads.
	var raw map[string]any
	if err := json.Unmarshal(env, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["payloadType"] != PayloadType {
		t.Errorf("payloadType = %v, want %s", raw["payloadType"], PayloadType)
	}
	body, _ := base64.StdEncoding.DecodeString(raw["payload"].(string))
	for _, want := range []string{`"_type":"https://in-toto.io/Statement/v1"`, `"digest":{"blake3":"` + target.Hex() + `"}`, `"predicateType":"` + PinPredicateType + `"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("payload %s lacks %s", body, want)
		}
	}
}

// mutate decodes an envelope, lets fn change it, and encodes it again.
func mutate(t *testing.T, env []byte, fn func(*Envelope)) []byte {
	t.Helper()
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	fn(&e)
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyFails(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	otherPub, _ := newKey(t)
	env := signed(t, priv)
	other := digest.Of([]byte("another manifest"))
	tests := []struct {
		name string
		env  []byte
		pub  ed25519.PublicKey
		want error
	}{
		{"tampered payload", mutate(t, env, func(e *Envelope) {
			body, _ := base64.StdEncoding.DecodeString(e.Payload)
			body = bytes.ReplaceAll(body, []byte(target.Hex()), []byte(other.Hex()))
			e.Payload = base64.StdEncoding.EncodeToString(body)
		}), pub, ErrBadSignature},
		{"tampered signature", mutate(t, env, func(e *Envelope) {
			sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
			sig[10] ^= 1
			e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
		}), pub, ErrBadSignature},
		{"tampered payload type", mutate(t, env, func(e *Envelope) { e.PayloadType = "application/json" }), pub, ErrMalformed},
		{"keyid removed, wrong key", mutate(t, env, func(e *Envelope) { e.Signatures[0].KeyID = "" }), otherPub, ErrBadSignature},
		{"wrong key", env, otherPub, ErrWrongKey},
		{"no signatures", mutate(t, env, func(e *Envelope) { e.Signatures = nil }), pub, ErrMalformed},
		{"not json", []byte("{"), pub, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Verify(tt.env, tt.pub)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify: got %v (statement %v), want %v", err, st, tt.want)
			}
		})
	}
	// The keyid is a hint only: without it the right key still verifies.
	if _, err := Verify(mutate(t, env, func(e *Envelope) { e.Signatures[0].KeyID = "" }), pub); err != nil {
		t.Errorf("Verify without keyid: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "signing")
	pub, priv := newKey(t)
	privFile, pubFile, err := WriteKeyFiles(prefix, priv)
	if err != nil {
		t.Fatalf("WriteKeyFiles: %v", err)
	}
	if fi, err := os.Stat(privFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v (%v), want 0600", privFile, fi.Mode().Perm(), err)
	}
	gotPriv, err := LoadPrivateKey(privFile)
	if err != nil || !gotPriv.Equal(priv) {
		t.Errorf("LoadPrivateKey: %v, equal %v", err, gotPriv.Equal(priv))
	}
	gotPub, err := LoadPublicKey(pubFile)
	if err != nil || !gotPub.Equal(pub) {
		t.Errorf("LoadPublicKey: %v, equal %v", err, gotPub.Equal(pub))
	}
	if _, _, err := WriteKeyFiles(prefix, priv); !errors.Is(err, ErrKeyExists) {
		t.Errorf("second WriteKeyFiles: got %v, want ErrKeyExists", err)
	}
	if _, err := LoadPublicKey(privFile); !errors.Is(err, ErrKeyFile) {
		t.Errorf("LoadPublicKey of a private key: got %v, want ErrKeyFile", err)
	}
	if _, err := LoadPrivateKey(pubFile); !errors.Is(err, ErrKeyFile) {
		t.Errorf("LoadPrivateKey of a public key: got %v, want ErrKeyFile", err)
	}
	// openssl reads the files, where it is installed.
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "pkey", "-in", privFile, "-pubout").Output()
		if err != nil {
			t.Fatalf("openssl pkey: %v", err)
		}
		want, _ := os.ReadFile(pubFile)
		if !bytes.Equal(out, want) {
			t.Errorf("openssl derives public key\n%s, want\n%s", out, want)
		}
	}
}

// CheckShown names the first field a pin shows that its statement did not
// sign; the pin's time counts only for statements that sign it (to the
// millisecond, as cas has signed since 2026-12).
func TestCheckShown(t *testing.T) {
	t.Parallel()
	when := time.Date(2026, 12, 1, 12, 0, 0, 123e6, time.UTC)
	st := NewPinStatement("paper/t1", target, "Table 1", when, "")
	st.Describe("file", "manifest", 4711)
	ok := Shown{Names: []string{"paper/t1", "paper/t1"}, Target: target, Message: "Table 1", Time: when, Kind: "file", Type: "manifest", Size: 4711}
	if err := st.CheckShown(ok); err != nil {
		t.Fatalf("CheckShown of the signed fields: %v", err)
	}
	for _, c := range []struct {
		edit func(*Shown)
		want string
	}{
		{func(v *Shown) { v.Names[1] = "paper/t2" }, `name "paper/t2" differs from the signed statement, which says "paper/t1"`},
		{func(v *Shown) { v.Names[0] = "paper/t2" }, `name "paper/t2" differs from the signed statement, which says "paper/t1"`},
		{func(v *Shown) { v.Target = digest.Of(nil) }, "target " + digest.Of(nil).String() + " differs from the signed statement, which says " + target.String()},
		{func(v *Shown) { v.Message = "best of 10" }, `message "best of 10" differs from the signed statement, which says "Table 1"`},
		{func(v *Shown) { v.Time = when.Add(time.Millisecond) }, "time 2026-12-01T12:00:00.124Z differs from the signed statement, which says 2026-12-01T12:00:00.123Z"},
		{func(v *Shown) { v.Kind = "dir" }, `kind "dir" differs from the signed statement, which says "file"`},
		{func(v *Shown) { v.Type = "" }, `type "" differs from the signed statement, which says "manifest"`},
		{func(v *Shown) { v.Size = 1 }, "size 1 differs from the signed statement, which says 4711"},
	} {
		v := ok
		v.Names = slices.Clone(ok.Names)
		c.edit(&v)
		err := st.CheckShown(v)
		if !errors.Is(err, ErrAltered) || err.Error() != "attest: "+c.want {
			t.Errorf("CheckShown: got %v, want %q (ErrAltered)", err, c.want)
		}
	}
	// Retention: a pin may claim none, never another than the statement's,
	// nor one a statement that signs its time does not have.
	until := when.Add(time.Hour)
	later := until.Add(time.Hour)
	retained := *st
	retained.Predicate.RetainUntil = &until
	for _, c := range []struct {
		st    *Statement
		claim *time.Time
		want  string
	}{
		{&retained, &until, ""},
		{&retained, nil, ""},
		{&retained, &later, "retain_until 2026-12-01T14:00:00.123Z differs from the signed statement, which says 2026-12-01T13:00:00.123Z"},
		{st, &until, "retain_until 2026-12-01T13:00:00.123Z differs from the signed statement, which says none"},
		{st, nil, ""},
	} {
		v := ok
		v.RetainUntil = c.claim
		err := c.st.CheckShown(v)
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, ErrAltered) || err.Error() != "attest: "+c.want) {
			t.Errorf("CheckShown, retained until %v, claiming %v: got %v, want %q", c.st.Predicate.RetainUntil, c.claim, err, c.want)
		}
	}
	// A statement at odds with itself.
	odd := *st
	odd.Subject = []Subject{{Name: "paper/t2", Digest: st.Subject[0].Digest}}
	if err := odd.CheckShown(ok); !errors.Is(err, ErrSubject) {
		t.Errorf("CheckShown of a statement whose subject names another pin: got %v, want ErrSubject", err)
	}
	// Before 2026-12 the statement's time was its own, to the nanosecond,
	// and the pin's a little later: not compared.
	old := NewPinStatement("paper/t1", target, "Table 1", when.Add(456), "")
	if old.TimeSigned() || !st.TimeSigned() {
		t.Errorf("TimeSigned: %v for a time of nanoseconds, %v for one of milliseconds; want false, true", old.TimeSigned(), st.TimeSigned())
	}
	v := ok
	v.Time = when.Add(time.Second)
	if err := old.CheckShown(v); err != nil {
		t.Errorf("CheckShown of an old statement, the pin's time later: %v", err)
	}
}
