package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
)

// spool keeps what a command prints until the command knows it will not
// start over (readThrough runs it again, reading a remote, when the
// local store lacks data): in memory up to spoolMemory bytes, beyond
// that in a temporary file, so that a listing of a million lines costs
// no memory and nothing is printed twice. Writes are buffered.
type spool struct {
	w    *bufio.Writer
	mem  bytes.Buffer
	file *os.File // unlinked; nil while what is spooled fits in memory
}

const spoolMemory = 1 << 20

func newSpool() *spool {
	s := &spool{}
	s.w = bufio.NewWriterSize(spoolSink{s}, 64<<10)
	return s
}

func (s *spool) Write(p []byte) (int, error) { return s.w.Write(p) }

// spoolSink is where the spool's buffer goes when it fills.
type spoolSink struct{ s *spool }

func (k spoolSink) Write(p []byte) (int, error) {
	s := k.s
	if s.file == nil && s.mem.Len()+len(p) <= spoolMemory {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "cas-out-*")
		if err != nil {
			return 0, err
		}
		os.Remove(f.Name()) // the open file stays until closed
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			f.Close()
			return 0, err
		}
		s.file = f
		s.mem = bytes.Buffer{}
	}
	return s.file.Write(p)
}

// reset forgets what was spooled.
func (s *spool) reset() {
	s.w.Reset(spoolSink{s})
	s.mem.Reset()
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

// copyTo writes what was spooled to w.
func (s *spool) copyTo(w io.Writer) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if s.file == nil {
		_, err := w.Write(s.mem.Bytes())
		return err
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, s.file)
	return err
}

// close releases the spool's file.
func (s *spool) close() { s.reset() }

// jsonList writes a JSON array one element at a time, byte for byte as
// writeJSON writes the whole slice: what it holds is one element. indent
// is the indentation of the line the array starts on ("" at the top, "  "
// as the value of a field of a top-level object).
type jsonList struct {
	w      io.Writer
	indent string
	n      int
}

func (l *jsonList) add(v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent(l.indent+"  ", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	sep := ",\n"
	if l.n == 0 {
		sep = "[\n"
	}
	l.n++
	if _, err := io.WriteString(l.w, sep+l.indent+"  "); err != nil {
		return err
	}
	_, err := l.w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return err
}

// close ends the array, without a newline after it.
func (l *jsonList) close() error {
	end := "\n" + l.indent + "]"
	if l.n == 0 {
		end = "[]"
	}
	_, err := io.WriteString(l.w, end)
	return err
}
