package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Release is the version of this source tree: the Python companion in
// python/ (pyproject.toml, cas.__version__) carries the same, so a script
// and the CLI built from one tree agree (python/python_test.go checks it).
const Release = "0.1.0"

// Version is the version of this cas: the module version of a released
// build, else the git commit it was built from ("+dirty" when the work
// tree had changes), else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
}

// Tool is how a manifest names the cas that wrote it: "cas VERSION".
func Tool() string { return "cas " + strings.TrimSpace(Version()) }
