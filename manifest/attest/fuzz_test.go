package attest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cas-ml/cas/digest"
)

// Run a fuzzer for longer with, for example:
//
//	go test ./manifest/attest -run XXX -fuzz FuzzVerify -fuzztime 60s
//	go test ./manifest/attest -run XXX -fuzz FuzzVerifyPayload -fuzztime 60s
//	go test ./manifest/attest -run XXX -fuzz FuzzParsePublicKey -fuzztime 60s
//	go test ./manifest/attest -run XXX -fuzz FuzzParsePrivateKey -fuzztime 60s

// fuzzKey is the fixed key the fuzzers sign and verify with, so that
// their seeds and any crasher they write replay.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func fuzzPub() ed25519.PublicKey { return fuzzKey.Public().(ed25519.PublicKey) }

// seedEnvelopes are envelopes Sign writes, and the variants a verifier
// must accept or refuse: other base64 alphabets, no keyid, a second
// signature, another key's signature.
func seedEnvelopes(f *testing.F) [][]byte {
	f.Helper()
	_, other, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	var out [][]byte
	sign := func(st *Statement, priv ed25519.PrivateKey) []byte {
		env, err := Sign(st, priv)
		if err != nil {
			f.Fatal(err)
		}
		return env
	}
	env := sign(NewPinStatement("paper/fig3", digest.Of([]byte("a manifest")), "Figure 3", at, ""), fuzzKey)
	out = append(out, env,
		sign(NewPinStatement("p", digest.Of(nil), "", time.Time{}, ""), fuzzKey),
		sign(NewPinStatement("ü/\"quoted\"\n", digest.Of([]byte("x")), strings.Repeat("m", 300), at, ""), fuzzKey),
		sign(NewPinStatement("paper/fig3", digest.Of([]byte("a manifest")), "", at, ""), other))
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		f.Fatal(err)
	}
	body, _ := base64.StdEncoding.DecodeString(e.Payload)
	sig := e.Signatures[0].Sig
	variant := func(fn func(*Envelope)) []byte {
		v := e
		v.Signatures = append([]Signature(nil), e.Signatures...)
		fn(&v)
		b, err := json.Marshal(&v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	out = append(out,
		variant(func(v *Envelope) { v.Signatures[0].KeyID = "" }),
		variant(func(v *Envelope) { v.Payload = base64.RawURLEncoding.EncodeToString(body) }),
		variant(func(v *Envelope) { v.Signatures = append([]Signature{{KeyID: "other", Sig: sig}}, v.Signatures...) }),
		variant(func(v *Envelope) { v.Signatures = append([]Signature{{Sig: "!!"}}, v.Signatures...) }),
		variant(func(v *Envelope) { v.PayloadType = "application/json" }),
		variant(func(v *Envelope) { v.Signatures = nil }),
		[]byte(`{}`), []byte(`null`), []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[{}]}`))
	return out
}

// FuzzVerify: no envelope makes Verify panic, and an envelope it accepts
// carries a signature by the key over exactly the payload whose statement
// it returns; that statement signs and verifies again unchanged.
func FuzzVerify(f *testing.F) {
	for _, s := range seedEnvelopes(f) {
		f.Add(s)
	}
	pub := fuzzPub()
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Verify(b, pub)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("Verify: an error of no known kind: %v", err)
			}
			if st != nil {
				t.Fatal("Verify returned a statement with an error")
			}
			return
		}
		// Check the signature again, by hand: some signature must be the
		// key's over the PAE of the payload the statement came from.
		var env Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("accepted an envelope that does not parse: %v", err)
		}
		body, err := decodeB64(env.Payload)
		if err != nil {
			t.Fatalf("accepted a payload that does not decode: %v", err)
		}
		signed := false
		for _, s := range env.Signatures {
			if sig, err := decodeB64(s.Sig); err == nil && ed25519.Verify(pub, PAE(PayloadType, body), sig) {
				signed = true
			}
		}
		if !signed {
			t.Fatal("accepted an envelope no signature of the key covers")
		}
		var want Statement
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("accepted a payload that is no statement: %v", err)
		}
		if mustJSON(t, st) != mustJSON(t, &want) {
			t.Fatalf("Verify returned %s, the signed payload holds %s", mustJSON(t, st), mustJSON(t, &want))
		}
		checkRoundTrip(t, st)
	})
}

// FuzzVerifyPayload: whatever payload is signed, Verify of its envelope
// does not panic, and a statement it accepts has the in-toto and pin
// types, can be checked against a subject, and round-trips.
func FuzzVerifyPayload(f *testing.F) {
	for _, env := range seedEnvelopes(f) {
		var e Envelope
		if json.Unmarshal(env, &e) == nil {
			if body, err := decodeB64(e.Payload); err == nil {
				f.Add(body)
			}
		}
	}
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://cas-ml.github.io/pin/v1"}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://cas-ml.github.io/pin/v1","subject":[{"name":"a","digest":{"blake3":"00"}},{}],"predicate":{"time":"9999-12-31T23:59:59+23:59"}}`))
	pub := fuzzPub()
	f.Fuzz(func(t *testing.T, body []byte) {
		sig := ed25519.Sign(fuzzKey, PAE(PayloadType, body))
		env, err := json.Marshal(&Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(body),
			Signatures: []Signature{{KeyID: KeyID(pub), Sig: base64.StdEncoding.EncodeToString(sig)}}})
		if err != nil {
			t.Fatal(err)
		}
		st, err := Verify(env, pub)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("a signed payload refused for another reason than its form: %v", err)
			}
			return
		}
		if st.Type != StatementType || st.PredicateType != PinPredicateType {
			t.Fatalf("accepted a statement of type %q, predicate %q", st.Type, st.PredicateType)
		}
		if d, err := digest.Parse(st.Predicate.Target); err == nil {
			_ = st.CheckSubject(st.Predicate.Pin, d)
		}
		checkRoundTrip(t, st)
	})
}

// checkRoundTrip signs an accepted statement again and checks that Verify
// returns it unchanged.
func checkRoundTrip(t *testing.T, st *Statement) {
	t.Helper()
	env, err := Sign(st, fuzzKey)
	if err != nil {
		t.Fatalf("an accepted statement cannot be signed again: %v", err)
	}
	again, err := Verify(env, fuzzPub())
	if err != nil {
		t.Fatalf("an accepted statement, signed again, does not verify: %v", err)
	}
	signer := *st
	signer.Predicate.Signer = KeyID(fuzzPub())
	if got, want := mustJSON(t, again), mustJSON(t, &signer); got != want {
		t.Fatalf("round trip: got %s, want %s", got, want)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	return string(b)
}

// seedKeyFiles are the key files WriteKeyFiles writes (through the same
// encoders), and how people hand them around: CRLF line ends, text
// before the block, a certificate-style block of another type.
func seedKeyFiles(f *testing.F) (privs, pubs [][]byte) {
	f.Helper()
	priv, err := EncodePrivateKey(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	pub, err := EncodePublicKey(fuzzPub())
	if err != nil {
		f.Fatal(err)
	}
	crlf := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }
	lead := func(b []byte) []byte { return append([]byte("key made by cas keygen\n"), b...) }
	privs = [][]byte{priv, crlf(priv), lead(priv), pub, []byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")}
	pubs = [][]byte{pub, crlf(pub), lead(pub), priv, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")}
	return privs, pubs
}

// FuzzParsePrivateKey: no file makes ParsePrivateKey panic; a key it
// accepts signs what its public half verifies, and encodes to a file
// that parses to the same key.
func FuzzParsePrivateKey(f *testing.F) {
	privs, _ := seedKeyFiles(f)
	for _, s := range privs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		priv, err := ParsePrivateKey(b)
		if err != nil {
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("an error that is not ErrKeyFile: %v", err)
			}
			return
		}
		if len(priv) != ed25519.PrivateKeySize {
			t.Fatalf("accepted a key of %d bytes", len(priv))
		}
		msg := []byte("a pin statement")
		if !ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, ed25519.Sign(priv, msg)) {
			t.Fatal("the accepted key's public half does not verify its signature")
		}
		enc, err := EncodePrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePrivateKey(enc)
		if err != nil || !again.Equal(priv) {
			t.Fatalf("round trip: %v, equal %v", err, again.Equal(priv))
		}
	})
}

// FuzzParsePublicKey: no file makes ParsePublicKey panic; a key it
// accepts has the ed25519 size, a key ID, and encodes to a file that
// parses to the same key.
func FuzzParsePublicKey(f *testing.F) {
	_, pubs := seedKeyFiles(f)
	for _, s := range pubs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ParsePublicKey(b)
		if err != nil {
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("an error that is not ErrKeyFile: %v", err)
			}
			return
		}
		if len(pub) != ed25519.PublicKeySize || len(KeyID(pub)) != 64 {
			t.Fatalf("accepted a key of %d bytes, key ID %q", len(pub), KeyID(pub))
		}
		enc, err := EncodePublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePublicKey(enc)
		if err != nil || !again.Equal(pub) {
			t.Fatalf("round trip: %v, equal %v", err, again.Equal(pub))
		}
	})
}
