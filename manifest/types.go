package manifest

import "github.com/cas-ml/cas/manifest/schema"

// The manifest's types and format live in package schema, a leaf the
// store can read (gc and pin need a manifest's closure); these names keep
// them at hand for users of this package.
type (
	Manifest    = schema.Manifest
	Artifact    = schema.Artifact
	Checkpoint  = schema.Checkpoint
	RNGState    = schema.RNGState
	Object      = schema.Object
	Code        = schema.Code
	Environment = schema.Environment
	Python      = schema.Python
	Torch       = schema.Torch
	GPU         = schema.GPU
	Seeds       = schema.Seeds
	Logs        = schema.Logs
	Criteria    = schema.Criteria
)

const (
	// Schema names the version of the manifest format cas writes for a
	// run or a record; a reproduction is SchemaV3 (it holds Criteria).
	Schema = schema.Schema
	// SchemaV3 added Criteria.
	SchemaV3 = schema.SchemaV3
	// RefPrefix is where runs are named: a run NAME has the ref runs/NAME.
	RefPrefix = schema.RefPrefix
	// MaxSize bounds a manifest.
	MaxSize = schema.MaxSize
	// DeterminismFile is where a run reports its determinism settings.
	DeterminismFile = schema.DeterminismFile
)

// ErrNotManifest reports bytes that are not a manifest of a known version.
var ErrNotManifest = schema.ErrNotManifest

// Parse reads a manifest; see schema.Parse.
func Parse(b []byte) (*Manifest, error) { return schema.Parse(b) }
