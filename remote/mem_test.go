package remote_test

import (
	"testing"

	"github.com/cas-ml/cas/remote"
	"github.com/cas-ml/cas/remote/remotetest"
)

func TestMem(t *testing.T) {
	t.Parallel()
	remotetest.Run(t, func(t *testing.T) remote.Backend { return remote.NewMem() })
}
