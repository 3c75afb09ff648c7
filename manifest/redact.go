package manifest

import (
	"bytes"
	"slices"
	"strings"
)

// Redacted stands in for a secret in everything a run stores.
const Redacted = "[REDACTED]"

// How a secret value is found in text depends on its length. A long one
// is removed wherever it occurs. A short one also occurs by chance in
// ordinary text ("abc" in "abcde", "42" in "epoch 42"), so it is removed
// only where it stands as a whole token (its neighbours are not letters,
// digits or '_'), and one of one or two characters only where it also
// follows its own name ("PIN=42", "--pin 42", "'pin': '42'"). Values that
// are switches, not secrets (true, false, none, ...), are left alone.
const (
	minAnywhere = 6
	minToken    = 3
)

// switchValues are values of secret-looking variables that are settings,
// not secrets: TOKENIZERS_PARALLELISM=false must not remove every "false"
// from a log.
var switchValues = []string{"true", "false", "yes", "no", "on", "off", "none", "null", "0", "1"}

func isSwitch(v string) bool { return slices.Contains(switchValues, strings.ToLower(v)) }

// argSecretWords end a part of a flag name that holds a credential.
var argSecretWords = []string{"key", "token", "secret", "secrets", "password", "passwd", "passphrase",
	"credential", "credentials", "auth", "authorization"}

// argPlainLast, as the last part of such a name, say the value is not the
// credential itself but where or how large it is (--key-file, --key-dim).
var argPlainLast = []string{"file", "files", "path", "dir", "name", "env", "var", "len", "length", "size",
	"dim", "dims", "count", "type", "field", "column", "col"}

// IsSecretFlag reports whether a command-line flag name (without its
// dashes) or the NAME of a NAME=VALUE argument looks like it holds a
// credential: a part of it (split at anything but letters and digits)
// ends in key, token, secret, password, passwd, passphrase, credential(s),
// auth or authorization, and its last part is not a word like file, path
// or dim. So --api-key, --hf_token, --apiKey, db.password and --oauth
// match; --max-tokens, --tokenizer, --author and --key-file do not.
func IsSecretFlag(name string) bool {
	parts := strings.FieldsFunc(strings.ToLower(name), func(c rune) bool {
		return (c < 'a' || c > 'z') && (c < '0' || c > '9')
	})
	if len(parts) == 0 || slices.Contains(argPlainLast, parts[len(parts)-1]) {
		return false
	}
	for _, p := range parts {
		for _, w := range argSecretWords {
			if strings.HasSuffix(p, w) {
				return true
			}
		}
	}
	return false
}

// secret is one value to remove, with the names it was found under.
type secret struct {
	value []byte
	names []string
}

// Redactor removes secrets from bytes a run stores (logs, the command
// line, the config, the diff): the values of secret-looking variables,
// the values given to credential-looking flags, and passwords in URLs
// (scheme://user:PASSWORD@host), in case a script prints them.
type Redactor struct{ secrets []secret }

// NewRedactor collects the secrets of env and of a command line: the
// values of env's secret-looking variables, the values of command's
// credential-looking arguments (see Command), and the password of every
// URL in either.
func NewRedactor(env, command []string) *Redactor {
	r := &Redactor{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if IsSecretName(k) {
			r.learn(v, k)
		}
		r.learnURLs(v)
	}
	_, found := redactArgs(command)
	for _, s := range found {
		r.learn(string(s.value), s.names[0])
	}
	for _, a := range command {
		r.learnURLs(a)
	}
	// Longest first, so a secret containing another is removed whole.
	slices.SortStableFunc(r.secrets, func(a, b secret) int { return len(b.value) - len(a.value) })
	return r
}

func (r *Redactor) learnURLs(s string) {
	_, pws := redactURLs([]byte(s))
	for _, p := range pws {
		r.learn(string(p), "")
	}
}

// learn adds a secret value found under name ("" for a URL password).
func (r *Redactor) learn(value, name string) {
	if value == "" || value == Redacted || isSwitch(value) {
		return
	}
	if len(value) < minToken && name == "" {
		return
	}
	for i := range r.secrets {
		if string(r.secrets[i].value) == value {
			if name != "" && !slices.Contains(r.secrets[i].names, name) {
				r.secrets[i].names = append(r.secrets[i].names, name)
			}
			return
		}
	}
	s := secret{value: []byte(value)}
	if name != "" {
		s.names = []string{name}
	}
	r.secrets = append(r.secrets, s)
}

// Bytes returns b with every URL password and every secret value
// replaced by Redacted, by the rules above.
func (r *Redactor) Bytes(b []byte) []byte {
	b, _ = redactURLs(b)
	for _, s := range r.secrets {
		if len(s.value) >= minAnywhere {
			b = bytes.ReplaceAll(b, s.value, []byte(Redacted))
		} else {
			b = replaceShort(b, s)
		}
	}
	return b
}

// String returns s with every secret replaced.
func (r *Redactor) String(s string) string { return string(r.Bytes([]byte(s))) }

// Command returns args as they are recorded: the value of every
// credential-looking argument replaced whatever its length (--api-key=V,
// --token V, -password V, NAME=V for such a NAME), then every secret and
// URL password replaced as in Bytes. A credential-looking flag without =
// takes the next argument as its value unless that begins with '-'; a
// switch value (--use-auth true) is kept.
func (r *Redactor) Command(args []string) []string {
	out, _ := redactArgs(args)
	for i := range out {
		out[i] = r.String(out[i])
	}
	return out
}

// redactArgs replaces the values of credential-looking arguments and
// returns them, each with the name it was given under.
func redactArgs(args []string) ([]string, []secret) {
	out := make([]string, 0, len(args))
	var found []secret
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue, isFlag := splitArg(a)
		switch {
		case name == "" || !IsSecretFlag(name):
		case hasValue:
			if value != "" && !isSwitch(value) {
				found = append(found, secret{[]byte(value), []string{name}})
				a = a[:len(a)-len(value)] + Redacted
			}
		case isFlag && i+1 < len(args) && args[i+1] != "" && !strings.HasPrefix(args[i+1], "-") && !isSwitch(args[i+1]):
			found = append(found, secret{[]byte(args[i+1]), []string{name}})
			out = append(out, a, Redacted)
			i++
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// splitArg reads "--name=value", "-name=value", "--name" and "NAME=value"
// (a NAME of letters, digits, '_', '.', '-', perhaps after '+' as Hydra
// overrides are written). Anything else has no name.
func splitArg(a string) (name, value string, hasValue, isFlag bool) {
	if strings.HasPrefix(a, "-") {
		rest := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if rest == "" || rest[0] == '-' {
			return "", "", false, false
		}
		name, value, hasValue = strings.Cut(rest, "=")
		return name, value, hasValue, true
	}
	name, value, hasValue = strings.Cut(strings.TrimLeft(a, "+"), "=")
	if !hasValue || name == "" {
		return "", "", false, false
	}
	for _, c := range []byte(name) {
		if !isWord(c) && c != '.' && c != '-' {
			return "", "", false, false
		}
	}
	return name, value, true, false
}

// replaceShort replaces the occurrences of a short secret that stand as a
// whole token and, below minToken bytes, follow one of its names.
func replaceShort(b []byte, s secret) []byte {
	var out []byte
	last := 0
	for i := 0; i <= len(b); {
		j := bytes.Index(b[i:], s.value)
		if j < 0 {
			break
		}
		j += i
		end := j + len(s.value)
		whole := (j == 0 || !isWord(b[j-1])) && (end == len(b) || !isWord(b[end]))
		if whole && (len(s.value) >= minToken || followsName(b[:j], s.names)) {
			out = append(out, b[last:j]...)
			out = append(out, Redacted...)
			last, i = end, end
		} else {
			i = j + 1
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// followsName reports whether text ends with one of names and then one
// to four separators (space, tab, '=', ':', ',', quotes), as in "PIN=42",
// "--pin 42", "'--pin', '42'" or "\"pin\": \"42".
func followsName(text []byte, names []string) bool {
	k, n := len(text), 0
	for k > 0 && n < 4 && strings.IndexByte(" \t=:,'\"", text[k-1]) >= 0 {
		k, n = k-1, n+1
	}
	if n == 0 {
		return false
	}
	for _, name := range names {
		if k >= len(name) && strings.EqualFold(string(text[k-len(name):k]), name) {
			return true
		}
	}
	return false
}

func isWord(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// redactURLs replaces the password of every URL with user information
// (scheme://user:PASSWORD@host) and returns the passwords it removed. A
// URL's authority ends at '/', '?', '#', white space, a quote or '<>'; its
// user information is what comes before the last '@' of the authority.
func redactURLs(b []byte) ([]byte, [][]byte) {
	var out []byte
	var pws [][]byte
	last := 0
	for i := 0; i < len(b); {
		j := bytes.Index(b[i:], []byte("://"))
		if j < 0 {
			break
		}
		j += i
		start := j + 3
		i = start
		if j == 0 || !isSchemeByte(b[j-1]) {
			continue
		}
		end := start
		for end < len(b) && !endsAuthority(b[end]) {
			end++
		}
		auth := b[start:end]
		at := bytes.LastIndexByte(auth, '@')
		if at < 0 {
			continue
		}
		colon := bytes.IndexByte(auth[:at], ':')
		if colon < 0 {
			continue
		}
		pw := auth[colon+1 : at]
		i = end
		if len(pw) == 0 || string(pw) == Redacted {
			continue
		}
		pws = append(pws, bytes.Clone(pw))
		out = append(out, b[last:start+colon+1]...)
		out = append(out, Redacted...)
		last = start + at
	}
	if out == nil {
		return b, pws
	}
	return append(out, b[last:]...), pws
}

// RedactURLs returns s with the password of every URL in it replaced.
func RedactURLs(s string) string {
	b, _ := redactURLs([]byte(s))
	return string(b)
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func endsAuthority(c byte) bool {
	return c <= ' ' || c == 0x7f || strings.IndexByte("/?#\"'<>`", c) >= 0
}
