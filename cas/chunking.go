package cas

import "github.com/cas-ml/cas/cas/chunk"

// The chunker lives in package chunk; these names keep the API of cas that
// cli, manifest and the tests use.

// ChunkParams are a repository's chunking parameters (chunk.Params).
type ChunkParams = chunk.Params

// Chunker cuts a file's bytes into chunks (chunk.Chunker).
type Chunker = chunk.Chunker

// DefaultChunkAvg is the average chunk size of a new repository.
const DefaultChunkAvg = chunk.DefaultAvg

// NewChunkParams derives chunking parameters from an average chunk size
// (chunk.NewParams).
func NewChunkParams(avg int) (ChunkParams, error) { return chunk.NewParams(avg) }

// NewChunker returns a chunker for valid parameters (chunk.New).
func NewChunker(p ChunkParams) *Chunker { return chunk.New(p) }
