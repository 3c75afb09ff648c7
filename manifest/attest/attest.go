package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/cas-ml/cas/digest"
)

// Layout identifiers.
const (
	// StatementType is the in-toto Statement v1 type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = "application/vnd.in-toto+json"
	// PinPredicateType names the predicate of a cas pin statement.
	PinPredicateType = "https://cas-ml.github.io/pin/v1"
	// DigestAlg is the subject digest algorithm key: BLAKE3-256, hex.
	DigestAlg = "blake3"
)

// Errors a caller may want to tell apart.
var (
	// ErrBadSignature: the envelope names this key but the signature does
	// not verify: the payload or the signature was altered.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrWrongKey: the envelope was signed by another key.
	ErrWrongKey = errors.New("signed by another key")
	// ErrMalformed: the bytes are not a DSSE envelope of an in-toto
	// statement cas can read.
	ErrMalformed = errors.New("malformed envelope or statement")
	// ErrSubject: the statement is about something other than the pin.
	ErrSubject = errors.New("statement subject does not match")
	// ErrKeyFile: a key file cannot be read as an ed25519 key.
	ErrKeyFile = errors.New("not an ed25519 key file")
)

// Statement is an in-toto Statement v1 whose predicate is a cas pin.
type Statement struct {
	Type          string       `json:"_type"`
	Subject       []Subject    `json:"subject"`
	PredicateType string       `json:"predicateType"`
	Predicate     PinPredicate `json:"predicate"`
}

// Subject is one artifact a statement is about.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// PinPredicate says who pinned what, when and why.
type PinPredicate struct {
	Pin     string    `json:"pin"`
	Target  string    `json:"target"` // blake3:<hex>
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
	// Signer is the key ID of the signing key (see the package doc).
	Signer string `json:"signer"`
	// Kind, Type and Size describe the target as the pin shows it
	// (statements from before they were signed lack them).
	Kind string `json:"kind,omitempty"`
	Type string `json:"type,omitempty"`
	Size *int64 `json:"size,omitempty"`
	// RetainUntil is when the pin's retention (pin --retain) ends, where
	// it was retained when signed.
	RetainUntil *time.Time `json:"retain_until,omitempty"`
}

// Describe signs, beside the pin, what it shows of its target: its kind
// ("file", "dir", …), type ("manifest" or empty) and size.
func (s *Statement) Describe(kind, typ string, size int64) {
	s.Predicate.Kind, s.Predicate.Type, s.Predicate.Size = kind, typ, &size
}

// NewPinStatement returns the statement that pin name points at target.
func NewPinStatement(name string, target digest.Digest, message string, t time.Time, signer string) *Statement {
	return &Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: name, Digest: map[string]string{DigestAlg: target.Hex()}}},
		PredicateType: PinPredicateType,
		Predicate:     PinPredicate{Pin: name, Target: target.String(), Message: message, Time: t.UTC(), Signer: signer},
	}
}

// CheckSubject reports whether the statement is about pin name pointing
// at target: the subject, and the predicate, must both say so.
func (s *Statement) CheckSubject(name string, target digest.Digest) (err error) {
	defer wrapError(&err)
	if len(s.Subject) != 1 {
		return fmt.Errorf("%w: %d subjects, want 1", ErrSubject, len(s.Subject))
	}
	sub := s.Subject[0]
	if got := sub.Digest[DigestAlg]; got != target.Hex() {
		return fmt.Errorf("%w: subject digest %s:%s, pin target %s", ErrSubject, DigestAlg, got, target)
	}
	if s.Predicate.Target != target.String() {
		return fmt.Errorf("%w: predicate target %s, pin target %s", ErrSubject, s.Predicate.Target, target)
	}
	if sub.Name != name || s.Predicate.Pin != name {
		return fmt.Errorf("%w: statement names pin %q, not %q", ErrSubject, sub.Name, name)
	}
	return nil
}

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // standard base64
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // standard base64
}

// PAE is the DSSE v1 pre-authentication encoding, what is signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII
// decimal bytes.
func PAE(payloadType string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteByte(' ')
	b.Write(body)
	return b.Bytes()
}

// KeyID names a public key: the hex SHA-256 of its PKIX DER encoding.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Sign serializes st, signs it with priv and returns the DSSE envelope
// as JSON. The statement's signer is set to priv's key ID.
func Sign(st *Statement, priv ed25519.PrivateKey) (_ []byte, err error) {
	defer wrapError(&err)
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign: %w", ErrKeyFile)
	}
	id := KeyID(priv.Public().(ed25519.PublicKey))
	s := *st
	s.Predicate.Signer = id
	body, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig := ed25519.Sign(priv, PAE(PayloadType, body))
	env := Envelope{
		PayloadType: PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(body),
		Signatures:  []Signature{{KeyID: id, Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
	return json.Marshal(&env)
}

// decodeB64 accepts standard and URL-safe base64, padded or not, as the
// DSSE spec asks of verifiers.
func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: bad base64", ErrMalformed)
}

// ErrAltered: a field a pin shows (its name, target, message, time, …)
// differs from what its statement signed.
var ErrAltered = errors.New("differs from the signed statement")

// CheckFields reports whether what a pin shows beside its name and target
// is what the statement signed: its message always, its kind, type and
// size where the statement has them. The error names the first field
// that differs and both values.
func (s *Statement) CheckFields(message, kind, typ string, size int64) (err error) {
	defer wrapError(&err)
	p := s.Predicate
	switch {
	case p.Message != message:
		return fmt.Errorf("message %q %w, which says %q", message, ErrAltered, p.Message)
	case p.Kind != "" && p.Kind != kind:
		return fmt.Errorf("kind %q %w, which says %q", kind, ErrAltered, p.Kind)
	case p.Size != nil && (p.Type != typ):
		return fmt.Errorf("type %q %w, which says %q", typ, ErrAltered, p.Type)
	case p.Size != nil && *p.Size != size:
		return fmt.Errorf("size %d %w, which says %d", size, ErrAltered, *p.Size)
	}
	return nil
}

// Shown is what cas shows of a pin: everything CheckShown compares with
// the statement.
type Shown struct {
	// Names are the names the pin goes by: the key it is stored under
	// and the name its own JSON records.
	Names   []string
	Target  digest.Digest
	Message string
	Time    time.Time
	Kind    string
	Type    string
	Size    int64
	// RetainUntil is the end of retention the pin claims, if any.
	RetainUntil *time.Time
}

// TimeSigned reports whether the pin's own time (and retention) must equal the
// statement's: a statement signed by a cas before 2026-12 has a time of
// nanoseconds, taken apart from the pin's (written later, to the
// millisecond), and only its own time is signed. Since then a pin and its
// statement hold one time, to the millisecond.
func (s *Statement) TimeSigned() bool {
	return s.Predicate.Time.Equal(s.Predicate.Time.Truncate(time.Millisecond))
}

// CheckShown reports whether everything a pin shows is what the
// statement signed: its names and target (and the statement's subject
// must agree with its predicate), its message, its time (where
// TimeSigned), and its kind, type and size where the statement has them.
// The error names the first field that differs and both values; it wraps
// ErrAltered, or ErrSubject for a statement at odds with itself.
func (s *Statement) CheckShown(v Shown) (err error) {
	defer wrapError(&err)
	p := s.Predicate
	if len(s.Subject) != 1 {
		return fmt.Errorf("%w: %d subjects, want 1", ErrSubject, len(s.Subject))
	}
	sub := s.Subject[0]
	if sub.Name != p.Pin || digest.Prefix+sub.Digest[DigestAlg] != p.Target {
		return fmt.Errorf("%w: subject %s %s:%s, predicate %s %s", ErrSubject, strconv.Quote(sub.Name), DigestAlg, sub.Digest[DigestAlg], strconv.Quote(p.Pin), p.Target)
	}
	for _, name := range v.Names {
		if name != p.Pin {
			return fmt.Errorf("name %q %w, which says %q", name, ErrAltered, p.Pin)
		}
	}
	if v.Target.String() != p.Target {
		return fmt.Errorf("target %s %w, which says %s", v.Target, ErrAltered, p.Target)
	}
	if err := s.CheckFields(v.Message, v.Kind, v.Type, v.Size); err != nil {
		return err
	}
	if s.TimeSigned() && !v.Time.Equal(p.Time) {
		return fmt.Errorf("time %s %w, which says %s", v.Time.UTC().Format(time.RFC3339Nano), ErrAltered, p.Time.UTC().Format(time.RFC3339Nano))
	}
	// A pin may claim no retention (a copy in a store that cannot lock),
	// never another than the statement's.
	if ru := v.RetainUntil; ru != nil && (p.RetainUntil != nil || s.TimeSigned()) {
		says := "none"
		if p.RetainUntil != nil {
			says = p.RetainUntil.UTC().Format(time.RFC3339Nano)
		}
		if p.RetainUntil == nil || !ru.Equal(*p.RetainUntil) {
			return fmt.Errorf("retain_until %s %w, which says %s", ru.UTC().Format(time.RFC3339Nano), ErrAltered, says)
		}
	}
	return nil
}

// Peek returns the statement inside an envelope without checking any
// signature: for showing what a pin's signer said, never for trusting it.
func Peek(envelope []byte) (_ *Statement, err error) {
	defer wrapError(&err)
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	body, err := decodeB64(env.Payload)
	if err != nil {
		return nil, err
	}
	return parseStatement(body)
}

// parseStatement decodes a payload as a cas pin statement.
func parseStatement(body []byte) (*Statement, error) {
	var st Statement
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("%w: statement: %w", ErrMalformed, err)
	}
	if st.Type != StatementType || st.PredicateType != PinPredicateType {
		return nil, fmt.Errorf("%w: statement type %q, predicate %q", ErrMalformed, st.Type, st.PredicateType)
	}
	return &st, nil
}

// Verify checks that the envelope carries a signature by pub over its
// payload and returns the statement inside. Only the payload's signed
// bytes are trusted: nothing outside the signature is read.
func Verify(envelope []byte, pub ed25519.PublicKey) (_ *Statement, err error) {
	defer wrapError(&err)
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify: %w", ErrKeyFile)
	}
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, env.PayloadType, PayloadType)
	}
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("%w: no signatures", ErrMalformed)
	}
	body, err := decodeB64(env.Payload)
	if err != nil {
		return nil, err
	}
	msg := PAE(env.PayloadType, body)
	id := KeyID(pub)
	tried := false
	for _, s := range env.Signatures {
		// keyid is a hint, not authenticated: try signatures that name
		// this key or no key.
		if s.KeyID != "" && s.KeyID != id {
			continue
		}
		tried = true
		sig, err := decodeB64(s.Sig)
		if err != nil || !ed25519.Verify(pub, msg, sig) {
			continue
		}
		return parseStatement(body)
	}
	if !tried {
		return nil, fmt.Errorf("%w: key %s is not among the signers (%s)", ErrWrongKey, shortID(id), shortID(env.Signatures[0].KeyID))
	}
	return nil, fmt.Errorf("%w: key %s", ErrBadSignature, shortID(id))
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// GenerateKey makes a new ed25519 key pair.
func GenerateKey() (_ ed25519.PublicKey, _ ed25519.PrivateKey, err error) {
	defer wrapError(&err)
	return ed25519.GenerateKey(rand.Reader)
}

// KeyFiles returns the names WriteKeyFiles uses for prefix.
func KeyFiles(prefix string) (privFile, pubFile string) {
	return prefix + ".key", prefix + ".pub"
}

// ErrKeyExists: WriteKeyFiles would overwrite a key file.
var ErrKeyExists = errors.New("key file exists already")

// WriteKeyFiles writes PREFIX.key (PKCS#8 "PRIVATE KEY" PEM, mode 0600)
// and PREFIX.pub (PKIX "PUBLIC KEY" PEM, mode 0644). It never overwrites
// an existing file.
func WriteKeyFiles(prefix string, priv ed25519.PrivateKey) (privFile, pubFile string, err error) {
	defer wrapError(&err)
	privFile, pubFile = KeyFiles(prefix)
	for _, p := range []string{privFile, pubFile} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s: %w", p, ErrKeyExists)
		}
	}
	privPEM, err := EncodePrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	pubPEM, err := EncodePublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return "", "", err
	}
	if err := writeNew(privFile, privPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(pubFile, pubPEM, 0o644); err != nil {
		_ = os.Remove(privFile)
		return "", "", err
	}
	return privFile, pubFile, nil
}

func writeNew(name string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", name, ErrKeyExists)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// EncodePrivateKey returns priv as a PKCS#8 "PRIVATE KEY" PEM block.
func EncodePrivateKey(priv ed25519.PrivateKey) (_ []byte, err error) {
	defer wrapError(&err)
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("encode private key: %w", ErrKeyFile)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKey returns pub as a PKIX "PUBLIC KEY" PEM block.
func EncodePublicKey(pub ed25519.PublicKey) (_ []byte, err error) {
	defer wrapError(&err)
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("encode public key: %w", ErrKeyFile)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// pemBlock returns the bytes of the first PEM block of b, which must be
// of type typ.
func pemBlock(b []byte, typ string) ([]byte, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKeyFile)
	}
	if blk.Type != typ {
		return nil, fmt.Errorf("%w: PEM %q, want %q", ErrKeyFile, blk.Type, typ)
	}
	return blk.Bytes, nil
}

// ParsePrivateKey reads a PKCS#8 "PRIVATE KEY" PEM block holding an
// ed25519 key.
func ParsePrivateKey(b []byte) (_ ed25519.PrivateKey, err error) {
	defer wrapError(&err)
	return parsePrivateKey(b)
}

func parsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	der, err := pemBlock(b, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T", ErrKeyFile, k)
	}
	return priv, nil
}

// ParsePublicKey reads a PKIX "PUBLIC KEY" PEM block holding an ed25519
// key.
func ParsePublicKey(b []byte) (_ ed25519.PublicKey, err error) {
	defer wrapError(&err)
	return parsePublicKey(b)
}

func parsePublicKey(b []byte) (ed25519.PublicKey, error) {
	der, err := pemBlock(b, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T", ErrKeyFile, k)
	}
	return pub, nil
}

// LoadPrivateKey reads a file ParsePrivateKey accepts.
func LoadPrivateKey(name string) (_ ed25519.PrivateKey, err error) {
	defer wrapError(&err)
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	priv, err := parsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return priv, nil
}

// LoadPublicKey reads a file ParsePublicKey accepts.
func LoadPublicKey(name string) (_ ed25519.PublicKey, err error) {
	defer wrapError(&err)
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	pub, err := parsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pub, nil
}
