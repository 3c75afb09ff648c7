package main

import (
	"archive/zip"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

func main() {
	var (
		out        = flag.String("out", "", "directory to write epochN.pt into (created)")
		n          = flag.Int("n", 4, "number of checkpoints")
		backboneMB = flag.Int("backbone-mb", 256, "size of the frozen backbone in MiB")
		layers     = flag.Int("layers", 24, "backbone tensors")
		headKB     = flag.Int("head-kb", 4096, "size of each trained tensor in KiB")
	)
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genckpt: -out is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "genckpt:", err)
		os.Exit(1)
	}
	layerSize := (*backboneMB << 20) / *layers
	frozen := make([][]byte, *layers)
	unique := int64(0)
	for i := range frozen {
		frozen[i] = random(layerSize+i*4099, uint64(100+i))
		unique += int64(len(frozen[i]))
	}
	var total int64
	for c := range *n {
		var tensors [][]byte
		for i := range frozen {
			tensors = append(tensors, frozen[i])
			if i%4 == 0 { // a trained adapter next to every fourth frozen layer
				h := random(*headKB<<10, uint64(1_000_000+1000*c+i))
				tensors = append(tensors, h)
				unique += int64(len(h))
			}
		}
		for m := range 4 { // optimizer moments of the trained tensors
			o := random(*headKB<<10, uint64(5_000_000+1000*c+m))
			tensors = append(tensors, o)
			unique += int64(len(o))
		}
		pickle := random(8<<10, uint64(9_000_000+c))
		unique += int64(len(pickle))
		path := filepath.Join(*out, fmt.Sprintf("epoch%d.pt", c))
		size, err := writeZip(path, pickle, tensors)
		if err != nil {
			fmt.Fprintln(os.Stderr, "genckpt:", err)
			os.Exit(1)
		}
		total += size
	}
	fmt.Printf("files=%d bytes=%d unique=%d\n", *n, total, unique)
}

func random(n int, seed uint64) []byte {
	c := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	b := make([]byte, n)
	_, _ = c.Read(b)
	return b
}

func writeZip(path string, pickle []byte, tensors [][]byte) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	zw := zip.NewWriter(f)
	add := func(name string, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if err := add("archive/data.pkl", pickle); err != nil {
		return 0, err
	}
	for i, t := range tensors {
		if err := add(fmt.Sprintf("archive/data/%d", i), t); err != nil {
			return 0, err
		}
	}
	if err := add("archive/version", []byte("3\n")); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), f.Close()
}
