package remote_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cas-ml/cas/remote"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url            string
		bucket, prefix string
		wantErr        bool
	}{
		{url: "s3://bucket", bucket: "bucket"},
		{url: "s3://bucket/", bucket: "bucket"},
		{url: "s3://bucket/team-a", bucket: "bucket", prefix: "team-a"},
		{url: "s3://bucket//team-a/runs/", bucket: "bucket", prefix: "team-a/runs"},
		{url: "", wantErr: true},
		{url: "bucket/prefix", wantErr: true},
		{url: "https://bucket/prefix", wantErr: true},
		{url: "s3:///prefix", wantErr: true},
		{url: "s3://key:secret@bucket", wantErr: true},
		{url: "s3://bucket?versionId=1", wantErr: true},
		{url: "s3://%zz", wantErr: true},
	} {
		t.Run(tt.url, func(t *testing.T) {
			bucket, prefix, err := remote.ParseURL(tt.url)
			if tt.wantErr {
				if !errors.Is(err, remote.ErrURL) {
					t.Errorf("ParseURL(%q): got %v, want ErrURL", tt.url, err)
				}
				return
			}
			if err != nil || bucket != tt.bucket || prefix != tt.prefix {
				t.Errorf("ParseURL(%q): got %q, %q, %v; want %q, %q", tt.url, bucket, prefix, err, tt.bucket, tt.prefix)
			}
		})
	}
}

// Without an endpoint a remote is on AWS S3: the region's endpoint when
// it has one.
func TestConfigS3Config(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		c    remote.Config
		want remote.S3Config
	}{
		{"aws", remote.Config{URL: "s3://b/p"},
			remote.S3Config{Endpoint: "https://s3.amazonaws.com", Bucket: "b", Prefix: "p", PartSize: 64 << 20}},
		{"aws region", remote.Config{URL: "s3://b", Region: "eu-west-1"},
			remote.S3Config{Endpoint: "https://s3.eu-west-1.amazonaws.com", Bucket: "b", Region: "eu-west-1", PartSize: 64 << 20}},
		{"endpoint", remote.Config{URL: "s3://b/x/y", Endpoint: "http://127.0.0.1:7070", Region: "us-east-1"},
			remote.S3Config{Endpoint: "http://127.0.0.1:7070", Bucket: "b", Prefix: "x/y", Region: "us-east-1", PartSize: 64 << 20}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.S3Config()
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("S3Config of %+v: got %+v, %v; want %+v", tt.c, got, err, tt.want)
			}
		})
	}
	if _, err := (remote.Config{URL: "gs://b"}).S3Config(); !errors.Is(err, remote.ErrURL) {
		t.Errorf("S3Config of gs://b: got %v, want ErrURL", err)
	}
}

// A remote's Connections is 0 (not set: DefaultConnections) or 1 to
// MaxConnections; AddConfig refuses anything else with a ConnectionsError
// and records nothing.
func TestAddConfigConnections(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n       int
		wantErr bool
	}{
		{0, false}, {1, false}, {remote.MaxConnections, false},
		{-1, true}, {remote.MaxConnections + 1, true},
	} {
		path := filepath.Join(t.TempDir(), remote.ConfigFile)
		err := remote.AddConfig(path, remote.Config{Name: "origin", URL: "s3://bucket", Connections: tt.n})
		var ce *remote.ConnectionsError
		if got := errors.As(err, &ce); got != tt.wantErr || (got && ce.N != tt.n) {
			t.Errorf("AddConfig with %d connections: got %v, want a ConnectionsError: %v", tt.n, err, tt.wantErr)
		}
		if !tt.wantErr && err != nil {
			t.Errorf("AddConfig with %d connections: %v", tt.n, err)
		}
		cs, err := remote.LoadConfigs(path)
		if err != nil || len(cs) != map[bool]int{false: 1, true: 0}[tt.wantErr] {
			t.Errorf("after AddConfig with %d connections: got %+v, %v", tt.n, cs, err)
		}
	}
}

func TestCheckConnections(t *testing.T) {
	t.Parallel()
	for n, ok := range map[int]bool{-1: false, 0: false, 1: true, 8: true, remote.MaxConnections: true, remote.MaxConnections + 1: false} {
		if err := remote.CheckConnections(n); (err == nil) != ok {
			t.Errorf("CheckConnections(%d): got %v, want ok %v", n, err, ok)
		}
	}
}

// The first remote added is the default, until one is added as Default;
// the file lists them by name, and lookups find them by name or as the
// default.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), remote.ConfigFile)
	if cs, err := remote.LoadConfigs(path); cs != nil || err != nil {
		t.Fatalf("LoadConfigs without a file: got %v, %v; want none", cs, err)
	}
	if _, ok, err := remote.LookupConfig(path, ""); ok || err != nil {
		t.Fatalf("LookupConfig of the default without a file: got %v, %v; want none", ok, err)
	}
	for _, c := range []remote.Config{
		{Name: "origin", URL: "s3://one"},
		{Name: "backup", URL: "s3://two/p", Endpoint: "http://127.0.0.1:9000", Connections: 32},
	} {
		if err := remote.AddConfig(path, c); err != nil {
			t.Fatalf("AddConfig(%s): %v", c.Name, err)
		}
	}
	want := []remote.Config{
		{Name: "backup", URL: "s3://two/p", Endpoint: "http://127.0.0.1:9000", Connections: 32},
		{Name: "origin", URL: "s3://one", Default: true},
	}
	if cs, err := remote.LoadConfigs(path); err != nil || !reflect.DeepEqual(cs, want) {
		t.Errorf("LoadConfigs: got %+v, %v; want %+v", cs, err, want)
	}
	if err := remote.AddConfig(path, remote.Config{Name: "origin", URL: "s3://three"}); err == nil {
		t.Error("AddConfig of a name already there: got no error")
	}
	if err := remote.AddConfig(path, remote.Config{Name: "bad", URL: "s3:/nobucket"}); !errors.Is(err, remote.ErrURL) {
		t.Errorf("AddConfig of a bad URL: got %v, want ErrURL", err)
	}
	if err := remote.AddConfig(path, remote.Config{Name: "aws", URL: "s3://four", Default: true}); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := remote.LookupConfig(path, ""); !ok || err != nil || c.Name != "aws" {
		t.Errorf("LookupConfig of the default: got %+v, %v, %v; want aws", c, ok, err)
	}
	if c, ok, err := remote.LookupConfig(path, "backup"); !ok || err != nil || c.URL != "s3://two/p" {
		t.Errorf("LookupConfig(backup): got %+v, %v, %v", c, ok, err)
	}
	var nr *remote.NoRemoteError
	if _, _, err := remote.LookupConfig(path, "nope"); !errors.As(err, &nr) || nr.Name != "nope" {
		t.Errorf("LookupConfig(nope): got %v, want a NoRemoteError naming nope", err)
	}
	nr = nil
	if err := remote.RemoveConfig(path, "nope"); !errors.As(err, &nr) || nr.Name != "nope" {
		t.Errorf("RemoveConfig(nope): got %v, want a NoRemoteError naming nope", err)
	}
	if err := remote.RemoveConfig(path, "aws"); err != nil {
		t.Fatal(err)
	}
	// No default is left: removing it names no other.
	if _, ok, err := remote.LookupConfig(path, ""); ok || err != nil {
		t.Errorf("LookupConfig of the default after removing it: got %v, %v; want none", ok, err)
	}
	if cs, err := remote.LoadConfigs(path); err != nil || len(cs) != 2 {
		t.Errorf("LoadConfigs after RemoveConfig: got %+v, %v; want backup and origin", cs, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// A file that is not JSON is an error naming the file, never an empty
// list a later edit would write over it.
func TestLoadConfigsDamaged(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), remote.ConfigFile)
	if err := os.WriteFile(path, []byte("[{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.LoadConfigs(path); err == nil {
		t.Error("LoadConfigs of a damaged file: got no error")
	}
	if err := remote.AddConfig(path, remote.Config{Name: "origin", URL: "s3://b"}); err == nil {
		t.Error("AddConfig to a damaged file: got no error")
	}
	if b, _ := os.ReadFile(path); string(b) != "[{" {
		t.Errorf("damaged file rewritten: got %q", b)
	}
}

func TestCheckBucket(t *testing.T) {
	tests := []struct {
		bucket string
		ok     bool
	}{
		{"ml-artifacts", true},
		{"a.b-c.123", true},
		{"abc", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"Bad_Bucket!!", false},
		{"UPPER", false},
		{"-start", false},
		{"end.", false},
		{"two..dots", false},
		{"dot.-hyphen", false},
		{"192.168.1.10", false},
	}
	for _, tt := range tests {
		err := remote.CheckBucket(tt.bucket)
		if tt.ok != (err == nil) {
			t.Errorf("remote.CheckBucket(%q): got %v, want ok=%v", tt.bucket, err, tt.ok)
		}
		if err != nil && !errors.Is(err, remote.ErrBucketName) {
			t.Errorf("remote.CheckBucket(%q): %v does not wrap remote.ErrBucketName", tt.bucket, err)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, e := range []string{"", "https://minio.example.com:9000", "http://127.0.0.1:7070", "https://s3.eu-west-1.amazonaws.com/"} {
		if err := remote.CheckEndpoint(e); err != nil {
			t.Errorf("remote.CheckEndpoint(%q): %v, want nil", e, err)
		}
	}
	for _, e := range []string{"127.0.0.1:17070", "minio.example.com", "ftp://host", "https://", "https://u:p@host", "https://host/path", "https://host?x=1"} {
		if err := remote.CheckEndpoint(e); !errors.Is(err, remote.ErrEndpoint) {
			t.Errorf("remote.CheckEndpoint(%q): got %v, want remote.ErrEndpoint", e, err)
		}
	}
}

// An endpoint with credentials in it is refused without showing them.
func TestCheckEndpointHidesCredentials(t *testing.T) {
	for _, e := range []string{"https://AKIAXX:topsecret@host", "http://AKIAXX:top secret@host:9000", "AKIAXX:topsecret@host"} {
		err := remote.CheckEndpoint(e)
		if !errors.Is(err, remote.ErrEndpointCredentials) || !errors.Is(err, remote.ErrEndpoint) {
			t.Errorf("remote.CheckEndpoint(%q): %v, want ErrEndpointCredentials", e, err)
		}
		if err != nil && (strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "top secret") || strings.Contains(err.Error(), "AKIAXX")) {
			t.Errorf("remote.CheckEndpoint(%q): %q shows the credentials", e, err)
		}
	}
}

func TestSetDefaultAndRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), remote.ConfigFile)
	for _, c := range []remote.Config{{Name: "a", URL: "s3://bucket-a"}, {Name: "b", URL: "s3://bucket-b"}} {
		if err := remote.AddConfig(path, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.SetDefaultConfig(path, "b"); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := remote.LookupConfig(path, ""); c.Name != "b" {
		t.Errorf("default after set-default b: got %q", c.Name)
	}
	var nr *remote.NoRemoteError
	if err := remote.SetDefaultConfig(path, "nope"); !errors.As(err, &nr) {
		t.Errorf("remote.SetDefaultConfig(nope): got %v, want a *remote.NoRemoteError", err)
	}
	if err := remote.RenameConfig(path, "b", "a"); err == nil {
		t.Error("remote.RenameConfig onto an existing name: got nil, want an error")
	}
	if err := remote.RenameConfig(path, "b", "backup"); err != nil {
		t.Fatal(err)
	}
	c, _, err := remote.LookupConfig(path, "")
	if err != nil || c.Name != "backup" || c.URL != "s3://bucket-b" {
		t.Errorf("default after rename: got %+v, %v; want backup at s3://bucket-b", c, err)
	}
	if err := remote.RenameConfig(path, "b", "c"); !errors.As(err, &nr) {
		t.Errorf("remote.RenameConfig(b) after the rename: got %v, want a *remote.NoRemoteError", err)
	}
}
