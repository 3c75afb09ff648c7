package cas

import (
	"errors"
	"testing"

	"github.com/cas-ml/cas/remote"
)

// A remote is named as a ref is, without a slash; AddRemote records it in
// the store's RemotesFile, the remote package checking the rest.
func TestAddRemote(t *testing.T) {
	r := newStoreForTest(t, 64<<10)
	for _, name := range []string{"", "a/b", ".hidden", "x..y", "deadbeef", "o.lock"} {
		if err := r.AddRemote(remote.Config{Name: name, URL: "s3://bucket"}); !errors.Is(err, ErrBadRefName) {
			t.Errorf("AddRemote(%q): got %v, want ErrBadRefName", name, err)
		}
	}
	var ce *remote.ConnectionsError
	if err := r.AddRemote(remote.Config{Name: "origin", URL: "s3://bucket", Connections: -1}); !errors.As(err, &ce) {
		t.Errorf("AddRemote with -1 connections: got %v, want a ConnectionsError", err)
	}
	if err := r.AddRemote(remote.Config{Name: "origin", URL: "s3://bucket"}); err != nil {
		t.Fatal(err)
	}
	c, ok, err := remote.LookupConfig(r.RemotesFile(), "")
	if err != nil || !ok || c.Name != "origin" || !c.Default {
		t.Errorf("default remote after AddRemote: got %+v, %v, %v; want origin", c, ok, err)
	}
}
