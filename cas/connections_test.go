package cas

import (
	"errors"
	"testing"
)

// A remote's Connections is 0 (not set: DefaultConnections) or 1 to
// MaxConnections; AddRemote refuses anything else with a ConnectionsError.
func TestAddRemoteConnections(t *testing.T) {
	for _, tt := range []struct {
		n       int
		wantErr bool
	}{
		{0, false}, {1, false}, {MaxConnections, false},
		{-1, true}, {MaxConnections + 1, true},
	} {
		r := newStoreForTest(t, 64<<10)
		err := r.AddRemote(RemoteConfig{Name: "origin", URL: "s3://bucket", Connections: tt.n})
		var ce *ConnectionsError
		if got := errors.As(err, &ce); got != tt.wantErr || (got && ce.N != tt.n) {
			t.Errorf("AddRemote with %d connections: got %v, want a ConnectionsError: %v", tt.n, err, tt.wantErr)
		}
		if !tt.wantErr && err != nil {
			t.Errorf("AddRemote with %d connections: %v", tt.n, err)
		}
	}
}
