package cas

import (
	"context"

	"github.com/cas-ml/cas/cas/format"
	"github.com/cas-ml/cas/digest"
	"github.com/cas-ml/cas/index"
	"github.com/cas-ml/cas/remote"
)

// TODO(lead): gc moves to cas/gc; remove
//
// The names gc.go used before the codecs moved to cas/format. segment is a
// defined type, not an alias, because gc.go calls seg.encode(), a method
// only this package can declare; readSegment and indexSegment convert.

type segment format.Segment

func (s *segment) encode() []byte { return (*format.Segment)(s).Encode() }

const (
	packPrefix    = format.PackPrefix
	segmentPrefix = format.SegmentPrefix
)

func packKey(id digest.Digest) string { return format.PackKey(id) }

func packIDFromKey(key string) (digest.Digest, error) { return format.PackIDFromKey(key) }

func readSegment(ctx context.Context, be remote.Backend, key string) (*segment, digest.Digest, error) {
	s, id, err := getSegment(ctx, be, key)
	return (*segment)(s), id, err
}

func indexSegment(idx index.Index, s *segment) error {
	return indexSegmentFrom(idx, (*format.Segment)(s), true)
}
