package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
)

// ConfigFile is the name of the file, in a store's directory, that holds
// its remotes: names, URLs and endpoints, never credentials, which come
// from the environment.
const ConfigFile = "remotes.json"

// Config is one remote of a store, as its ConfigFile records it.
type Config struct {
	Name     string `json:"name"`
	URL      string `json:"url"` // s3://bucket[/prefix]
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	Default  bool   `json:"default,omitempty"`
	// Connections is how many requests run at once (0: DefaultConnections).
	Connections int `json:"connections,omitempty"`
}

// DefaultConnections is how many objects move at once to or from a remote.
const DefaultConnections = 8

// MaxConnections is the most requests a remote may have in flight.
const MaxConnections = 256

// ConnectionsError is a Connections setting outside 1 to MaxConnections.
type ConnectionsError struct{ N int }

func (e *ConnectionsError) Error() string {
	return fmt.Sprintf("connections %d: want 1 to %d", e.N, MaxConnections)
}

// CheckConnections returns a *ConnectionsError unless n is a valid
// Connections setting.
func CheckConnections(n int) error {
	if n < 1 || n > MaxConnections {
		return &ConnectionsError{N: n}
	}
	return nil
}

// ErrURL reports a remote URL that is not s3://BUCKET[/PREFIX].
var ErrURL = errors.New("a remote URL looks like s3://BUCKET[/PREFIX]")

// NoRemoteError names a remote that a store's ConfigFile does not record.
type NoRemoteError struct{ Name string }

func (e *NoRemoteError) Error() string { return "no remote named " + e.Name }

// ParseURL splits a remote URL, s3://BUCKET[/PREFIX], into its bucket and
// its prefix (without slashes around it). Anything else, credentials or
// a query included, is an error wrapping ErrURL.
func ParseURL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return "", "", fmt.Errorf("%w: %q", ErrURL, s)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// s3PartSize is the part size of the S3 backends of remotes: packs (16 MiB
// and a trailer) go as one streamed PUT each, never as multipart uploads,
// which would buffer parts in memory.
const s3PartSize = 64 << 20

// S3Config turns the remote's settings into a backend configuration:
// without an endpoint, AWS S3's (the region's, when one is given).
// Credentials come from the AWS variables and shared files.
func (c Config) S3Config() (S3Config, error) {
	bucket, prefix, err := ParseURL(c.URL)
	if err != nil {
		return S3Config{}, err
	}
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "https://s3.amazonaws.com"
		if c.Region != "" {
			endpoint = "https://s3." + c.Region + ".amazonaws.com"
		}
	}
	return S3Config{Endpoint: endpoint, Bucket: bucket, Prefix: prefix, Region: c.Region, PartSize: s3PartSize}, nil
}

// ErrBucketName reports a bucket name that breaks S3's naming rules.
var ErrBucketName = errors.New("invalid bucket name")

// ErrEndpoint reports an endpoint that is not an http:// or https:// URL
// of a server.
var ErrEndpoint = errors.New("an endpoint looks like https://HOST[:PORT] or http://HOST[:PORT]")

// ErrEndpointCredentials refuses an endpoint with credentials in it
// (user:password@), without showing it: what is before the @ may be a key.
// It is an ErrEndpoint too.
var ErrEndpointCredentials = fmt.Errorf("credentials in it (user:password@) are refused, and not shown here: %w", ErrEndpoint)

// CheckBucket checks a bucket name against the rules S3 (and MinIO,
// versitygw, Ceph) set for new buckets: 3 to 63 lower-case letters,
// digits, dots and hyphens, a letter or digit at each end, no two dots
// in a row, not an IP address. A bad name is an error wrapping
// ErrBucketName that says which rule it breaks.
func CheckBucket(b string) error {
	why := ""
	switch {
	case len(b) < 3 || len(b) > 63:
		why = fmt.Sprintf("%d characters, want 3 to 63", len(b))
	case strings.IndexFunc(b, func(r rune) bool { return !alnum(byte(r)) && r != '.' && r != '-' || r > 0x7f }) >= 0:
		why = "use only lower-case letters, digits, dots and hyphens"
	case !alnum(b[0]) || !alnum(b[len(b)-1]):
		why = "begin and end with a letter or digit"
	case strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-."):
		why = "no dot next to another dot or a hyphen"
	case net.ParseIP(b) != nil:
		why = "not an IP address"
	}
	if why != "" {
		return fmt.Errorf("%w %q: %s", ErrBucketName, b, why)
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// CheckEndpoint checks an endpoint URL: http or https, a host, nothing
// after it (no path, query or credentials). "" (AWS's) passes.
func CheckEndpoint(e string) error {
	if e == "" {
		return nil
	}
	if strings.Contains(e, "@") {
		// Never echoed: what is before the @ may be a key.
		return ErrEndpointCredentials
	}
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: %q", ErrEndpoint, e)
	}
	return nil
}

// Check says whether c's URL, endpoint and connections may be recorded:
// an error wrapping ErrURL, ErrBucketName or ErrEndpoint, a
// *ConnectionsError, or nil. Its name is the store's to check.
func (c Config) Check() error {
	bucket, _, err := ParseURL(c.URL)
	if err != nil {
		return err
	}
	if err := CheckBucket(bucket); err != nil {
		return err
	}
	if err := CheckEndpoint(c.Endpoint); err != nil {
		return err
	}
	if c.Connections != 0 { // 0: not set, DefaultConnections
		return CheckConnections(c.Connections)
	}
	return nil
}

// LoadConfigs reads the remotes recorded in the file at path (a store's
// ConfigFile), sorted by name. A missing file holds none.
func LoadConfigs(path string) ([]Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cs []Config
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	slices.SortFunc(cs, func(a, b Config) int { return strings.Compare(a.Name, b.Name) })
	return cs, nil
}

// configMu serializes edits of config files within a process; each file
// is replaced atomically.
var configMu sync.Mutex

// EditConfigs rewrites the file at path with what fn makes of the remotes
// it records; nothing is written if fn fails.
func EditConfigs(path string, fn func([]Config) ([]Config, error)) error {
	configMu.Lock()
	defer configMu.Unlock()
	cs, err := LoadConfigs(path)
	if err != nil {
		return err
	}
	if cs, err = fn(cs); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// AddConfig records c in the file at path after checking it (Check). The
// first remote recorded is the default; one added as Default takes that
// from the others. A name already recorded is refused.
func AddConfig(path string, c Config) error {
	if err := c.Check(); err != nil {
		return err
	}
	return EditConfigs(path, func(cs []Config) ([]Config, error) {
		for _, x := range cs {
			if x.Name == c.Name {
				return nil, fmt.Errorf("remote %s exists already: remove it first", c.Name)
			}
		}
		if len(cs) == 0 {
			c.Default = true
		}
		if c.Default {
			for i := range cs {
				cs[i].Default = false
			}
		}
		return append(cs, c), nil
	})
}

// RemoveConfig forgets the remote name in the file at path; nothing on
// the remote is touched. An unknown name is a *NoRemoteError.
func RemoveConfig(path, name string) error {
	return EditConfigs(path, func(cs []Config) ([]Config, error) {
		i := slices.IndexFunc(cs, func(x Config) bool { return x.Name == name })
		if i < 0 {
			return nil, &NoRemoteError{Name: name}
		}
		return slices.Delete(cs, i, i+1), nil
	})
}

// SetDefaultConfig makes the remote name the default one in the file at
// path. An unknown name is a *NoRemoteError.
func SetDefaultConfig(path, name string) error {
	return EditConfigs(path, func(cs []Config) ([]Config, error) {
		if !slices.ContainsFunc(cs, func(x Config) bool { return x.Name == name }) {
			return nil, &NoRemoteError{Name: name}
		}
		for i := range cs {
			cs[i].Default = cs[i].Name == name
		}
		return cs, nil
	})
}

// RenameConfig gives the remote old the name new in the file at path,
// keeping its settings (and whether it is the default). An unknown old
// is a *NoRemoteError; a new name already recorded is refused. The
// caller checks that new is a valid name.
func RenameConfig(path, old, new string) error {
	return EditConfigs(path, func(cs []Config) ([]Config, error) {
		i := slices.IndexFunc(cs, func(x Config) bool { return x.Name == old })
		if i < 0 {
			return nil, &NoRemoteError{Name: old}
		}
		if slices.ContainsFunc(cs, func(x Config) bool { return x.Name == new }) {
			return nil, fmt.Errorf("remote %s exists already: remove or rename it first", new)
		}
		cs[i].Name = new
		return cs, nil
	})
}

// LookupConfig returns the remote name recorded in the file at path, or
// the default one for "". It reports false, without error, when name is
// "" and there is no default; an unknown name is a *NoRemoteError.
func LookupConfig(path, name string) (Config, bool, error) {
	cs, err := LoadConfigs(path)
	if err != nil {
		return Config{}, false, err
	}
	for _, x := range cs {
		if x.Name == name || (name == "" && x.Default) {
			return x, true, nil
		}
	}
	if name != "" {
		return Config{}, false, &NoRemoteError{Name: name}
	}
	return Config{}, false, nil
}
