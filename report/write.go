package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FileStem is a file name for the report made of the run's name, every
// character a shell or a file system might read replaced.
func (rep *Report) FileStem() string { return safeName(rep.Run.Name) }

// WriteHTML writes the page to path, whole or not at all.
func (rep *Report) WriteHTML(path string) error {
	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return writeFile(path, b.Bytes())
}

// WriteMarkdown writes the report as Markdown to path with its plots as
// SVG files beside it (PATH-lineage.svg, PATH-spread-N.svg,
// PATH-curve-N.svg, PATH without its extension), and returns the files
// written, path last. Each file is written whole or not at all; the
// Markdown last, so it never names a picture that is not there.
func (rep *Report) WriteMarkdown(path string) ([]string, error) {
	p := rep.page()
	stem := strings.TrimSuffix(path, filepath.Ext(path))
	base := filepath.Base(stem)
	var files []string
	svgs := map[string]string{}
	write := func(key, tmpl string, data any) error {
		var b bytes.Buffer
		if err := pageTmpl.ExecuteTemplate(&b, tmpl, data); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		b.WriteByte('\n')
		name := stem + "-" + key + ".svg"
		if err := writeFile(name, b.Bytes()); err != nil {
			return err
		}
		files = append(files, name)
		svgs[key] = base + "-" + key + ".svg"
		return nil
	}
	if err := write("lineage", "lineage", p.LineageSVG); err != nil {
		return nil, err
	}
	for i, d := range p.Dists {
		if err := write(fmt.Sprintf("spread-%d", i+1), "dist", d); err != nil {
			return nil, err
		}
	}
	for i, c := range p.CurveSVGs {
		if err := write(fmt.Sprintf("curve-%d", i+1), "curve", c); err != nil {
			return nil, err
		}
	}
	if err := writeFile(path, rep.markdown(p, svgs)); err != nil {
		return nil, err
	}
	return append(files, path), nil
}

// writeFile writes b to path through a temporary file beside it, so a
// failure leaves nothing half-written; the directory is made if missing.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".cas-report-*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}
