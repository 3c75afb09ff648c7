package format_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
)

// scanAll collects what ScanSegment tells of data, read a byte at a time.
func scanAll(data []byte) (*format.Segment, error) {
	s := &format.Segment{Blobs: []index.Blob{}, Files: map[digest.Digest][]digest.Digest{}}
	err := format.ScanSegment(iotest.OneByteReader(bytes.NewReader(data)), format.SegmentVisitor{
		Blob: func(b index.Blob) error { s.Blobs = append(s.Blobs, b); return nil },
		File: func(f digest.Digest, chunks []digest.Digest) error { s.Files[f] = chunks; return nil },
	})
	return s, err
}

// FuzzScanSegment checks that ScanSegment, reading a segment as it
// streams, accepts exactly what DecodeSegment accepts and tells the same
// blobs and files, in the segment's order.
func FuzzScanSegment(f *testing.F) {
	_, _, blobs := buildPack(f, goldenBlobs(f))
	seg := goldenSegment(blobs).Encode()
	body, err := zstdDecoder.DecodeAll(seg[len(format.SegmentMagic):], nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg, false)
	f.Add(body, true)
	f.Add((&format.Segment{}).Encode(), false)
	f.Add(body[:len(body)-1], true)
	f.Add(append(body, 0), true)
	f.Add([]byte("CASIDX0"), false)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		if raw {
			data = segmentOf(data)
		}
		want, werr := format.DecodeSegment(data)
		got, gerr := scanAll(data)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("ScanSegment: %v; DecodeSegment: %v", gerr, werr)
		}
		if gerr != nil {
			if !errors.Is(gerr, format.ErrBadSegment) {
				t.Fatalf("ScanSegment error %v, want ErrBadSegment", gerr)
			}
			return
		}
		if len(want.Blobs) == 0 {
			want.Blobs = []index.Blob{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ScanSegment = %+v, want %+v", got, want)
		}
	})
}

// A visitor's error stops the scan and comes back as it is.
func TestScanSegmentStopsOnVisitorError(t *testing.T) {
	t.Parallel()
	_, _, blobs := buildPack(t, goldenBlobs(t))
	seg := goldenSegment(blobs).Encode()
	stop := errors.New("stop")
	n := 0
	err := format.ScanSegment(bytes.NewReader(seg), format.SegmentVisitor{Blob: func(index.Blob) error { n++; return stop }})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanSegment: got %v after %d blobs, want the visitor's error after 1", err, n)
	}
}
