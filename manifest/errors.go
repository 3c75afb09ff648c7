package manifest

import (
	"errors"
	"fmt"

	"github.com/cas-ml/cas/digest"
)

// OptionError is a bad value given in Options. Option names the field
// ("Inputs", "Config"); Value, if set, is the one at fault. A caller with
// flags names its own flag instead (cli: --input, --config).
type OptionError struct {
	Option string
	Value  string
	Err    error
}

func (e *OptionError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s %s: %v", e.Option, e.Value, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Option, e.Err)
}

func (e *OptionError) Unwrap() error { return e.Err }

// ErrWorkDirExists: a reproduction's directory (Options.Dir) exists.
var ErrWorkDirExists = errors.New("the reproduction's directory exists")

// ExistsError says which directory exists; it wraps ErrWorkDirExists.
type ExistsError struct{ Dir string }

func (e *ExistsError) Error() string { return e.Dir + " exists" }
func (e *ExistsError) Unwrap() error { return ErrWorkDirExists }

// OutsideInputError refuses a reproduction: the input was read from a
// path outside the run's directory that the recorded command does not
// name, so the command would read whatever lies there now. Restoring the
// input there and giving the command anew, or recording the run with the
// input inside its directory, are the ways out.
type OutsideInputError struct {
	Name, Path string
	Digest     digest.Digest
}

func (e *OutsideInputError) Error() string {
	return fmt.Sprintf("input %s was read from %s, outside the run's directory, and the recorded command does not name it", e.Name, e.Path)
}

// MissingCommitError: the recorded commit is not in the git repository
// the reproduction checks it out from (Options.Repo, or the current one).
type MissingCommitError struct{ Commit, Repo string }

func (e *MissingCommitError) Error() string {
	return fmt.Sprintf("commit %s is not in the git repository at %s", e.Commit, e.Repo)
}

// NoArtifactError: a run has no input or output of that name. Spec is
// what was asked; Run names the run (as Spec began). It wraps ErrNoArtifact.
type NoArtifactError struct {
	Spec, Run string
	// Kind is "input" or "output" when the spec said which, else "".
	Kind, Name string
}

func (e *NoArtifactError) Error() string {
	if e.Kind != "" {
		return fmt.Sprintf("%s: %v: %s %q", e.Spec, ErrNoArtifact, e.Kind, e.Name)
	}
	return fmt.Sprintf("%s: %v: %q (name one as %s:outputs/NAME or %s:inputs/NAME)", e.Spec, ErrNoArtifact, e.Name, e.Run, e.Run)
}

func (e *NoArtifactError) Unwrap() error { return ErrNoArtifact }
