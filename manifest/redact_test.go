package manifest

import (
	"bytes"
	"reflect"
	"testing"
)

func TestIsSecretFlag(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"api-key": true, "apiKey": true, "hf_token": true, "token": true, "password": true, "passwd": true,
		"db.password": true, "aws-secret-access-key": true, "client_secret": true, "oauth": true,
		"credentials": true, "authorization": true, "auth": true, "API_KEY": true,
		"max-tokens": false, "max_new_tokens": false, "tokenizer": false, "author": false, "key-file": false,
		"key-dim": false, "password-file": false, "lr": false, "seed": false, "": false,
	} {
		if got := IsSecretFlag(name); got != want {
			t.Errorf("IsSecretFlag(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRedactorCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"flag=value of one character", nil,
			[]string{"python3", "t.py", "--api-key=X", "--token", "Y", "-password=Z", "-secret", "W"},
			[]string{"python3", "t.py", "--api-key=[REDACTED]", "--token", "[REDACTED]", "-password=[REDACTED]", "-secret", "[REDACTED]"}},
		{"a flag then another flag keeps the other", nil,
			[]string{"t.py", "--use-auth", "--lr", "0.1"},
			[]string{"t.py", "--use-auth", "--lr", "0.1"}},
		{"switch values are kept", nil,
			[]string{"t.py", "--use-auth", "true", "--auth=none", "--token", "0"},
			[]string{"t.py", "--use-auth", "true", "--auth=none", "--token", "0"}},
		{"names that are not credentials", nil,
			[]string{"t.py", "--max-tokens", "512", "--author", "jane", "--key-file", "k.pem", "--tokenizer=gpt2"},
			[]string{"t.py", "--max-tokens", "512", "--author", "jane", "--key-file", "k.pem", "--tokenizer=gpt2"}},
		{"NAME=VALUE arguments", nil,
			[]string{"env", "HF_TOKEN=ab", "+db.password=pw", "LR=0.1", "python3"},
			[]string{"env", "HF_TOKEN=[REDACTED]", "+db.password=[REDACTED]", "LR=0.1", "python3"}},
		{"URL passwords anywhere in an argument", nil,
			[]string{"--db", "postgres://user:p@ss@host:5432/db?x=1", "--src=https://u:x@h/r.git", "https://h/no-user", "ssh://git@h/r"},
			[]string{"--db", "postgres://user:[REDACTED]@host:5432/db?x=1", "--src=https://u:[REDACTED]@h/r.git", "https://h/no-user", "ssh://git@h/r"}},
		{"env secrets inside arguments", []string{"MY_TOKEN=tok123456", "PIN_PASSWORD=k9%Q", "FLAG_TOKEN=ab"},
			[]string{"--header=Bearer tok123456", "--x", "k9%Q", "--y=ab", "abc"},
			[]string{"--header=Bearer [REDACTED]", "--x", "[REDACTED]", "--y=ab", "abc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := NewRedactor(tt.env, tt.args).Command(tt.args)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedactorText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		env, args []string
		in, want  string
	}{
		{"long values anywhere", []string{"HF_TOKEN=hf_abcdef123"}, nil,
			"x hf_abcdef123hf_abcdef123 y", "x [REDACTED][REDACTED] y"},
		{"short values as whole tokens only", []string{"DB_PASSWORD=k9Qz"}, nil,
			"pw k9Qz, pw=k9Qz; xk9Qz k9Qzx k9Qz_1\nk9Qz", "pw [REDACTED], pw=[REDACTED]; xk9Qz k9Qzx k9Qz_1\n[REDACTED]"},
		{"two characters only after their name", []string{"PIN_PASSWORD=42"}, nil,
			"epoch 42 of 420; PIN_PASSWORD=42 'PIN_PASSWORD': '42' pin_password: 42x",
			"epoch 42 of 420; PIN_PASSWORD=[REDACTED] 'PIN_PASSWORD': '[REDACTED]' pin_password: 42x"},
		{"switch values are not secrets", []string{"TOKENIZERS_PARALLELISM=false", "USE_AUTH=1"}, nil,
			"loss false 1", "loss false 1"},
		{"flag values of any length", nil, []string{"t.py", "--api-key=X", "--token", "Yq7", "--password=Zebra_Secret"},
			"['t.py', '--api-key=X', '--token', 'Yq7', '--password=Zebra_Secret'] X Yq7 Zebra_Secret",
			"['t.py', '--api-key=[REDACTED]', '--token', '[REDACTED]', '--password=[REDACTED]'] X [REDACTED] [REDACTED]"},
		{"URL passwords in text and where else they occur", []string{"DATABASE_URL=postgres://user:dbpw77@host/db"}, nil,
			"connect postgres://user:dbpw77@host/db\npassword was dbpw77; other https://a:b@c \"https://a:@c\"",
			"connect postgres://user:[REDACTED]@host/db\npassword was [REDACTED]; other https://a:[REDACTED]@c \"https://a:@c\""},
		{"no scheme, no URL", nil, nil, "://u:p@h x://u:p@h/", "://u:p@h x://u:[REDACTED]@h/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewRedactor(tt.env, tt.args).String(tt.in); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCaptureVarsRemovesURLPasswords(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=postgres://user:hunter2@db:5432/x", "OMP_NUM_THREADS=4"}
	got := CaptureVars(env, []string{"DATABASE_URL"})
	want := map[string]string{"DATABASE_URL": "postgres://user:[REDACTED]@db:5432/x", "OMP_NUM_THREADS": "4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// FuzzRedactURLs: no text makes redactURLs panic; it changes text only
// to remove a password it returns, from the text, and a second pass finds
// no password left.
func FuzzRedactURLs(f *testing.F) {
	for _, s := range []string{"postgres://user:pw@host/db", "x https://a:b@c:d@e/f?g#h y", "://u:p@h", "s3://k:@b",
		"a://b:" + Redacted + "@c", "git+https://u:tok@github.com/o/r.git@v1\nnext://x:y@z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, pws := redactURLs(bytes.Clone(b))
		if len(pws) == 0 && !bytes.Equal(out, b) {
			t.Fatalf("no password found, yet %q became %q", b, out)
		}
		for _, pw := range pws {
			if len(pw) == 0 || !bytes.Contains(b, pw) {
				t.Fatalf("returned password %q is not in %q", pw, b)
			}
		}
		again, more := redactURLs(bytes.Clone(out))
		if !bytes.Equal(again, out) || len(more) != 0 {
			t.Fatalf("a second pass changed %q to %q", out, again)
		}
	})
}
