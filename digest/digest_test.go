package digest

import (
	"bytes"
	"testing"
)

// Vectors from the BLAKE3 reference: b3sum of the empty input and of "abc".
func TestOfKnownVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{"abc", []byte("abc"), "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.in).String(); got != tt.want {
				t.Errorf("Of(%q) = %s, want %s", tt.in, got, tt.want)
			}
			got, n, err := FromReader(bytes.NewReader(tt.in))
			if err != nil || n != int64(len(tt.in)) || got.String() != tt.want {
				t.Errorf("FromReader = %s, %d, %v; want %s", got, n, err, tt.want)
			}
		})
	}
}

func TestOfLargeMatchesStreaming(t *testing.T) {
	t.Parallel()
	b := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB, crosses the 1 MiB pieces
	h := New()
	h.Write(b)
	if got, want := Of(b), FromHash(h); got != want {
		t.Errorf("Of = %s, streaming = %s", got, want)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	d := Of([]byte("abc"))
	for _, s := range []string{d.String(), d.Hex()} {
		got, err := Parse(s)
		if err != nil || got != d {
			t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, d)
		}
	}
	bad := []string{"", "blake3:", "sha256:" + d.Hex(), d.Hex()[:63], "BLAKE3:" + d.Hex(), "blake3:" + d.Hex()[:62] + "zz", "blake3:" + bytes.NewBufferString(d.Hex()).String() + "0"}
	upper := []byte(d.Hex())
	upper[0] = 'A'
	bad = append(bad, string(upper))
	for _, s := range bad {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded, want error", s)
		}
	}
}

func TestIsHexPrefix(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"6437b3ac":         true,
		"blake3:6437b3ac":  true,
		"6437b3a":          false,
		"6437b3ag":         false,
		"6437B3AC":         false,
		"main":             false,
		"deadbeefdeadbeef": true,
	}
	for in, want := range tests {
		if got := IsHexPrefix(in); got != want {
			t.Errorf("IsHexPrefix(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTextRoundTrip(t *testing.T) {
	t.Parallel()
	d := Of([]byte("x"))
	b, _ := d.MarshalText()
	var e Digest
	if err := e.UnmarshalText(b); err != nil || e != d {
		t.Errorf("round trip: got %v, %v; want %v", e, err, d)
	}
}
