package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
)

const block = 1 << 20 // the big file is written in 1 MiB blocks

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		out     = flag.String("out", "", "output directory (created; must not hold the outputs already)")
		sizeMB  = flag.Int("size-mb", 1024, "size of big.bin in MiB (0 skips it)")
		files   = flag.Int("files", 50000, "number of small files in tree/ (0 skips it)")
		dirs    = flag.Int("dirs", 100, "number of directories the small files are spread over")
		minSize = flag.Int("min", 2<<10, "smallest small-file size in bytes")
		maxSize = flag.Int("max", 16<<10, "largest small-file size in bytes")
		seed    = flag.Uint64("seed", 1, "seed of every generator")
	)
	flag.Parse()
	switch {
	case *out == "":
		return errors.New("-out is required")
	case *sizeMB < 0 || *files < 0:
		return errors.New("-size-mb and -files must be >= 0")
	case *dirs < 1:
		return errors.New("-dirs must be >= 1")
	case *minSize < 0 || *maxSize < *minSize:
		return errors.New("need 0 <= -min <= -max")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var bigErr, treeErr error
	if *sizeMB > 0 {
		wg.Go(func() { bigErr = writeBig(filepath.Join(*out, "big.bin"), *sizeMB, *seed) })
	}
	if *files > 0 {
		wg.Go(func() {
			treeErr = writeTree(filepath.Join(*out, "tree"), *files, *dirs, *minSize, *maxSize, *seed)
		})
	}
	wg.Wait()
	return errors.Join(bigErr, treeErr)
}

// seedOf derives a 32-byte ChaCha8 seed from a seed and a stream number.
func seedOf(seed, stream uint64) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], seed)
	binary.LittleEndian.PutUint64(s[8:], stream)
	copy(s[16:], "cas-bench-gendat")
	return s
}

func writeBig(path string, sizeMB int, seed uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	src := rand.NewChaCha8(seedOf(seed, 0))
	buf := make([]byte, block)
	for range sizeMB {
		_, _ = src.Read(buf) // never fails
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func writeTree(root string, files, dirs, minSize, maxSize int, seed uint64) error {
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	for d := range dirs {
		if err := os.Mkdir(filepath.Join(root, fmt.Sprintf("d%03d", d)), 0o755); err != nil {
			return err
		}
	}
	// Sizes come from one PCG stream, contents from one ChaCha8 stream, both
	// consumed in file order, so the tree depends only on the flags.
	sizes := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	src := rand.NewChaCha8(seedOf(seed, 1))
	buf := make([]byte, maxSize)
	for i := range files {
		n := minSize + sizes.IntN(maxSize-minSize+1)
		_, _ = src.Read(buf[:n])
		name := filepath.Join(root, fmt.Sprintf("d%03d", i%dirs), fmt.Sprintf("f%05d.bin", i))
		if err := writeNew(name, buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

// writeNew writes b to a file that must not exist yet.
func writeNew(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
