package words

import "testing"

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		noun string
		want string
	}{
		{0, "file", "0 files"},
		{1, "file", "1 file"},
		{27, "file", "27 files"},
		{1, "directory", "1 directory"},
		{2, "directory", "2 directories"},
		{2, "key", "2 keys"},
		{1, "RNG state", "1 RNG state"},
		{3, "RNG state", "3 RNG states"},
		{1234567, "chunk", "1,234,567 chunks"},
		{2, "y", "2 ys"},
	} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}
