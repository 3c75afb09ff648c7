package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote"
)

// ErrNotInstalled means that versitygw is neither on PATH nor in
// $(go env GOPATH)/bin.
var ErrNotInstalled = errors.New("s3test: versitygw not found on PATH or in $(go env GOPATH)/bin; `make deps` installs it (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")

// Server is a running versitygw serving the buckets of a directory on
// 127.0.0.1. Its fields are read-only.
type Server struct {
	// Endpoint is the server's URL, "http://127.0.0.1:PORT".
	Endpoint string
	// AccessKey and SecretKey are the root credentials; Region is the
	// server's region.
	AccessKey, SecretKey, Region string
	// Dir holds the buckets, one directory each.
	Dir string

	cmd     *exec.Cmd
	bin     string
	flags   []string      // versitygw's, before the backend's name
	addr    string        // 127.0.0.1:PORT
	exited  chan struct{} // closed when the process has exited
	log     *syncBuffer
	tempDir bool // Stop removes Dir
	client  *minio.Client
	buckets atomic.Int64
	stop    sync.Once
	stopErr error
}

// Find returns the path of the versitygw binary, or ErrNotInstalled.
func Find() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.SplitList(strings.TrimSpace(string(out)))...)
	}
	dirs = append(dirs, filepath.SplitList(build.Default.GOPATH)...)
	for _, d := range dirs {
		p := filepath.Join(d, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Start starts a server over a temporary directory for the test and
// stops it when the test ends. Without versitygw it skips the test, or
// fails it when the environment has CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartServer()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("s3test: stop server: %v", err)
		}
	})
	return s
}

// skipOrFail ends the test for a server that could not start: a skip
// when versitygw is missing, outside CI.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// StartServer starts a server over a new temporary directory, which Stop
// removes. It returns ErrNotInstalled without versitygw.
func StartServer() (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "s3test-")
	if err != nil {
		return nil, err
	}
	s, err := startIn(bin, dir, "", nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.tempDir = true
	return s, nil
}

// ReadOnly starts a second server over the same directory, with the same
// credentials, that refuses every write (versitygw --readonly): a bucket
// the client may read and not write. The test's end stops it.
func (s *Server) ReadOnly(t testing.TB) *Server {
	t.Helper()
	ro, err := s.StartReadOnly()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := ro.Stop(); err != nil {
			t.Errorf("s3test: stop read-only server: %v", err)
		}
	})
	return ro
}

// StartReadOnly is ReadOnly for callers that stop the server themselves.
func (s *Server) StartReadOnly() (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	return startIn(bin, s.Dir, s.SecretKey, []string{"--readonly"})
}

// startIn runs bin over dir on a free port, choosing another port when
// someone takes the chosen one first. secret is the root secret key (new
// when empty); flags go before the backend's name.
func startIn(bin, dir, secret string, flags []string) (*Server, error) {
	if secret == "" {
		secret = randomHex(16)
	}
	var lastErr error
	for range 5 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s := &Server{
			Endpoint:  "http://" + addr,
			AccessKey: "cas-test",
			SecretKey: secret,
			Region:    "us-east-1",
			Dir:       dir,
			bin:       bin,
			flags:     flags,
			addr:      addr,
		}
		if err := s.launch(); err != nil {
			return nil, err
		}
		if lastErr = s.waitReady(15 * time.Second); lastErr == nil {
			s.client, lastErr = minio.New(addr, &minio.Options{
				Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
				Region: s.Region,
			})
			if lastErr == nil {
				return s, nil
			}
		}
		s.kill()
		if !strings.Contains(s.log.String(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("s3test: versitygw did not start: %w", lastErr)
}

// launch starts the versitygw process of s on its address.
func (s *Server) launch() error {
	s.exited = make(chan struct{})
	s.log = new(syncBuffer)
	// Keys go through the environment, not the command line that any
	// user can read in ps.
	args := append([]string{"--quiet", "--region", s.Region, "--port", s.addr}, s.flags...)
	s.cmd = exec.Command(s.bin, append(args, "posix", s.Dir)...)
	s.cmd.Env = append(cleanEnv(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("s3test: start %s: %w", s.bin, err)
	}
	exited := s.exited
	cmd := s.cmd
	go func() {
		_ = cmd.Wait() // killed: the exit status says nothing
		close(exited)
	}()
	return nil
}

// Pause ends the server's process and keeps its buckets and address:
// until Resume, a request to its endpoint finds nothing listening, as
// with a server that is down or a network that is gone.
func (s *Server) Pause() { s.kill() }

// Freeze stops the server's process without ending it (SIGSTOP): the
// kernel still takes connections on its address and nothing answers them,
// as with a hung server or a network that drops packets. Thaw undoes it.
func (s *Server) Freeze() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw lets a frozen server run again.
func (s *Server) Thaw() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Resume starts a paused server again on the same address, over the same
// buckets and with the same keys.
func (s *Server) Resume() error {
	if err := s.launch(); err != nil {
		return err
	}
	if err := s.waitReady(15 * time.Second); err != nil {
		s.kill()
		return fmt.Errorf("s3test: versitygw did not start again: %w", err)
	}
	return nil
}

// cleanEnv returns the environment without versitygw's own settings,
// which could change the port or the keys.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freeAddr returns a 127.0.0.1 address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("s3test: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady waits until the server answers HTTP requests.
func (s *Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	wall := clock.Real()
	deadline := wall.Now().Add(timeout)
	for {
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited: %s", strings.TrimSpace(s.log.String()))
		case <-wall.After(20 * time.Millisecond):
		}
		if wall.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after %v: %s", s.Endpoint, timeout, strings.TrimSpace(s.log.String()))
		}
	}
}

// kill ends the server process and waits for it.
func (s *Server) kill() {
	_ = s.cmd.Process.Kill() // fails only if it has exited already
	<-s.exited
}

// Stop ends the server and removes its directory if StartServer made it.
// It may be called more than once.
func (s *Server) Stop() error {
	s.stop.Do(func() {
		s.kill()
		if s.tempDir {
			s.stopErr = os.RemoveAll(s.Dir)
		}
	})
	return s.stopErr
}

// Log returns what the server has printed.
func (s *Server) Log() string { return s.log.String() }

// CreateBucket creates a bucket, with Object Lock enabled if objectLock.
// Names need 3 to 63 lowercase letters, digits, dots or hyphens.
func (s *Server) CreateBucket(name string, objectLock bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region, ObjectLocking: objectLock})
	if err != nil {
		return fmt.Errorf("s3test: create bucket %s: %w", name, err)
	}
	return nil
}

// NewBucket creates a bucket with a name not used before on this server
// and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("cas-test-%d", s.buckets.Add(1))
	if err := s.CreateBucket(name, false); err != nil {
		t.Fatal(err)
	}
	return name
}

// IncompleteUploads returns how many multipart uploads were started in
// bucket and neither completed nor aborted.
func (s *Server) IncompleteUploads(bucket string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for u := range s.client.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			return n, fmt.Errorf("s3test: list incomplete uploads of %s: %w", bucket, u.Err)
		}
		n++
	}
	return n, nil
}

// Config returns the configuration of an S3 backend for bucket and prefix
// on this server, with its credentials.
func (s *Server) Config(bucket, prefix string) remote.S3Config {
	return remote.S3Config{
		Endpoint:  s.Endpoint,
		Bucket:    bucket,
		Prefix:    prefix,
		Region:    s.Region,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

// Env returns the environment variables giving a client (cas, the aws
// CLI) this server's credentials and region.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
	}
}

// Shared is one server for all the tests of a package, started by the
// first test that asks for it. Stop it in TestMain after m.Run:
//
//	var s3srv s3test.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		s3srv.Stop()
//		os.Exit(code)
//	}
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Get returns the shared server, starting it on first use. Without
// versitygw it skips the test, or fails it when CI=true.
func (sh *Shared) Get(t testing.TB) *Server {
	t.Helper()
	sh.once.Do(func() { sh.srv, sh.err = StartServer() })
	if sh.err != nil {
		skipOrFail(t, sh.err)
	}
	return sh.srv
}

// Stop stops the shared server if it was started.
func (sh *Shared) Stop() {
	sh.once.Do(func() {}) // no start after Stop
	if sh.srv != nil {
		_ = sh.srv.Stop() // a leftover temp dir is no reason to fail a passed run
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
