package manifest

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/manifest/ckpt"
)

// checkpointExts are the file names inspected when a run's outputs are
// recorded; other files are not opened.
var checkpointExts = map[string]bool{".pt": true, ".pth": true, ".ckpt": true, ".bin": true,
	".npy": true, ".npz": true, ".safetensors": true, ".pkl": true}

// maxInspect bounds the checkpoints inspected per output and their size.
const (
	maxInspectFiles = 1000
	maxInspectSize  = 64 << 30
)

// FindCheckpoints inspects the model files under path (a file or a
// directory) and returns what a manifest records of each: tensor count
// and RNG-state fingerprints. Files that do not parse as checkpoints are
// left out; nothing here fails a run.
func FindCheckpoints(path string) []Checkpoint {
	var out []Checkpoint
	visit := func(p, rel string) {
		if len(out) >= maxInspectFiles || !checkpointExts[strings.ToLower(filepath.Ext(p))] {
			return
		}
		if c, ok := inspectFile(p, rel); ok {
			out = append(out, c)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		visit(path, filepath.Base(path))
		return out
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(path, p)
		visit(p, filepath.ToSlash(rel))
		return nil
	})
	return out
}

func inspectFile(path, rel string) (Checkpoint, bool) {
	f, err := os.Open(path)
	if err != nil {
		return Checkpoint{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() > maxInspectSize {
		return Checkpoint{}, false
	}
	rep, err := ckpt.Inspect(f, fi.Size(), rel)
	if err != nil || (len(rep.Tensors) == 0 && len(rep.RNG) == 0) {
		return Checkpoint{}, false
	}
	d, _, err := digest.FromReader(io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return Checkpoint{}, false
	}
	c := Checkpoint{Path: rel, Digest: d, Format: rep.Format, Tensors: len(rep.Tensors), RNG: []RNGState{}}
	for _, s := range rep.RNG {
		c.RNG = append(c.RNG, RNGState{Kind: s.Kind, Path: s.Path, Fingerprint: s.Fingerprint.String(), Summary: s.Summary})
	}
	return c, true
}
