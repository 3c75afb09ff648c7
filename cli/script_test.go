package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cas-ml/cas/cli"
	"github.com/cas-ml/cas/clock"
	"github.com/cas-ml/cas/remote/s3test"
)

var update = flag.Bool("update", false, "rewrite the expected output files inside testdata/script/*.txtar")

// TestMain makes the test binary double as the cas command: testscript
// copies it into a directory on $PATH under the name "cas" and runs it
// with os.Args = ["cas", args...], which is what cli.Main reads.
func TestMain(m *testing.M) {
	// Under -race every cas process would sleep 1s at exit (the race
	// runtime's default atexit_sleep_ms); testscript passes GORACE on.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	testscript.Main(m, map[string]func(){
		"cas": func() { os.Exit(cli.MainWith(scriptFactory())) },
	})
}

// scriptClockVar names the file holding how far the scripts' clock is
// ahead of the wall clock (a Go duration), which `clock advance` moves.
// Only this test binary reads it: the cas program has no such variable.
const scriptClockVar = "CAS_TEST_CLOCK_FILE"

// scriptFactory is the real program's factory, with the scripts' clock
// when $CAS_TEST_CLOCK_FILE is set: the wall clock plus the offset in
// that file, read at every look, so that a script ages what it stored
// (for gc's grace periods) without sleeping.
func scriptFactory() *cli.Factory {
	f := cli.SystemFactory()
	path := os.Getenv(scriptClockVar)
	if path == "" {
		return f
	}
	f.Clock = clock.Func(func() time.Time {
		off, err := readClockOffset(path)
		if err != nil {
			panic(fmt.Sprintf("the scripts' clock: %v", err))
		}
		return clock.Real().Now().Add(off)
	})
	return f
}

func readClockOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return time.ParseDuration(strings.TrimSpace(string(b)))
}

// clock advance DURATION moves the clock of the cas commands that follow
// forward by DURATION (a Go duration such as 2s or 25h).
func cmdClock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || args[0] != "advance" {
		ts.Fatalf("usage: clock advance DURATION")
	}
	d, err := time.ParseDuration(args[1])
	if err != nil || d < 0 {
		ts.Fatalf("clock advance %s: want a duration of 0 or more", args[1])
	}
	path := ts.Getenv(scriptClockVar)
	off, err := readClockOffset(path)
	ts.Check(err)
	ts.Check(os.WriteFile(path, []byte((off+d).String()+"\n"), 0o644))
}

// scriptTimeout bounds the whole script run, so that a command that hangs
// (a push reading a FIFO, say) fails the test instead of stalling it. The
// scripts run in parallel and share it: at 3 minutes, the race run on a
// loaded 2-core machine ran out of time with 51 scripts (the torch ones
// alone take 2 minutes there).
const scriptTimeout = 10 * time.Minute

// TestScripts runs the end-to-end CLI scripts in testdata/script. Each is
// one behaviour of cas as a user sees it: exact output, exit codes, files.
// Run with -update to rewrite the expected output kept in the scripts.
func TestScripts(t *testing.T) {
	if os.Getenv("CI") == "true" {
		// Scripts use [exec:b3sum] so that a developer without b3sum can
		// still run them; CI must not skip those checks silently.
		if _, err := exec.LookPath("b3sum"); err != nil {
			t.Fatal("CI=true but b3sum is not on $PATH: install it (make deps) so no script skips its b3sum checks")
		}
	}
	deadline := time.Now().Add(scriptTimeout)
	if d, ok := t.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	testscript.Run(t, testscript.Params{
		Dir:                "testdata/script",
		Setup:              setupScript,
		Cmds:               scriptCmds,
		UpdateScripts:      *update,
		RequireUniqueNames: true,
		Condition:          scriptCondition,
		Deadline:           deadline,
	})
}

// scriptCondition knows [versitygw]: the S3 server is installed, and
// [torch]: /usr/bin/python3 imports torch and numpy (Debian's packages,
// which make deps installs). In CI both are always true, so that a script
// needing them fails rather than skips.
func scriptCondition(cond string) (bool, error) {
	ci := os.Getenv("CI") == "true"
	switch cond {
	case "versitygw":
		_, err := s3test.Find()
		return err == nil || ci, nil
	case "torch":
		err := exec.Command("/usr/bin/python3", "-c", "import torch, numpy").Run()
		return err == nil || ci, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// setupScript gives each script a clean environment: its own HOME, UTC
// times, and no CAS_DIR unless the script sets one.
func setupScript(env *testscript.Env) error {
	home := filepath.Join(env.WorkDir, ".home")
	if err := os.Mkdir(home, 0o755); err != nil {
		return err
	}
	vars := env.Vars[:0]
	for _, kv := range env.Vars {
		if !strings.HasPrefix(kv, "CAS_DIR=") {
			vars = append(vars, kv)
		}
	}
	env.Vars = vars
	env.Setenv("HOME", home)
	env.Setenv("TZ", "UTC")
	env.Setenv("NO_COLOR", "1")
	clockFile := filepath.Join(env.WorkDir, ".clock")
	if err := os.WriteFile(clockFile, []byte("0s\n"), 0o644); err != nil {
		return err
	}
	env.Setenv(scriptClockVar, clockFile)
	return nil
}

var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"exits":    cmdExits,
	"capture":  cmdCapture,
	"jsonget":  cmdJSONGet,
	"jsonmask": cmdJSONMask,
	"mkfiles":  cmdMkfiles,
	"mkrand":   cmdMkrand,
	"mkfifo":   cmdMkfifo,
	"treeeq":   cmdTreeEq,
	"flipbyte": cmdFlipByte,
	"editfile": cmdEditFile,
	"s3":       cmdS3,
	"clock":    cmdClock,
	"scrub":    cmdScrub,
	"readme":   cmdReadme,
}

// readmePath is the README whose quick-start the readme command runs.
var readmePath, _ = filepath.Abs("../README.md")

// readme quickstart FILE writes to FILE the five lines of the README's
// local S3 quick-start (the sh block after its "<!-- quickstart" mark),
// made to run here: under $WORK instead of /tmp, on a free port instead
// of 7070, with the repository's scripts/versitygw.sh and versitygw
// itself on $PATH; it waits for the server after the line that starts
// it, and stops it at the end.
func cmdReadme(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 || args[0] != "quickstart" {
		ts.Fatalf("usage: readme quickstart FILE")
	}
	b, err := os.ReadFile(readmePath)
	ts.Check(err)
	_, after, ok := strings.Cut(string(b), "<!-- quickstart")
	if !ok {
		ts.Fatalf("readme: no <!-- quickstart mark in %s", readmePath)
	}
	_, block, _ := strings.Cut(after, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
	if len(lines) != 5 {
		ts.Fatalf("readme: the quick-start has %d lines, want 5:\n%s", len(lines), block)
	}
	bin, err := s3test.Find()
	ts.Check(err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	ts.Check(l.Close())
	script, err := filepath.Abs("../scripts/versitygw.sh")
	ts.Check(err)
	fix := strings.NewReplacer("/tmp/cas-s3", ts.Getenv("WORK")+"/s3", "7070", port, `"$CAS_SRC"/scripts/versitygw.sh`, script)
	var out strings.Builder
	fmt.Fprintf(&out, "set -e\nexport PATH=%q:\"$PATH\"\n", filepath.Dir(bin))
	for _, line := range lines {
		out.WriteString(fix.Replace(line) + "\n")
		if strings.Contains(line, "versitygw.sh") {
			fmt.Fprintf(&out, "trap 'kill $! 2>/dev/null; wait' EXIT\n"+
				"for i in $(seq 150); do (echo >/dev/tcp/127.0.0.1/%s) 2>/dev/null && break; sleep 0.1; done\n", port)
		}
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out.String()), 0o644))
}

// scrubbers replace what changes from one run to the next in human
// output: how long something took (and the rate), and dates.
var scrubbers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(` in [0-9.]+(ns|µs|ms|s|m[0-9.]+s)( \([0-9.]+ [KMGT]?i?B/s\))?`), " in TIME"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d`), "DATE"},
}

// scrub stdout|stderr prints the last command's stdout or stderr with
// durations, rates and dates replaced by TIME and DATE, for a golden
// comparison (cmp stdout want/...) of human output.
func cmdScrub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 || args[0] != "stdout" && args[0] != "stderr" {
		ts.Fatalf("usage: scrub stdout|stderr")
	}
	out := ts.ReadFile(args[0])
	for _, s := range scrubbers {
		out = s.re.ReplaceAllString(out, s.with)
	}
	fmt.Fprint(ts.Stdout(), out)
}

// s3 [lock] [readonly] starts a versitygw on 127.0.0.1 for this script
// (stopped at its end), creates a bucket (with Object Lock if "lock") and
// sets $S3_ENDPOINT, $S3_BUCKET, $S3_DIR (the bucket's directory on
// disk) and the AWS_* credentials; a second bucket, cas-plain, never has
// Object Lock. With "readonly", $S3_RO_ENDPOINT is a
// second server over the same buckets that refuses every write.
//
// s3 pause stops the script's server, keeping its buckets and address
// (requests then find nothing listening: a server down, a network gone);
// s3 resume starts it again. s3 freeze stops its process without ending
// it (connections are taken, nothing answers: a hung server, a network
// that drops packets); s3 thaw lets it run again.
func cmdS3(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: s3 [lock] [readonly] | s3 pause | s3 resume | s3 freeze | s3 thaw")
	}
	if len(args) == 1 && (args[0] == "pause" || args[0] == "resume" || args[0] == "freeze" || args[0] == "thaw") {
		scriptServersMu.Lock()
		srv := scriptServers[ts]
		scriptServersMu.Unlock()
		if srv == nil {
			ts.Fatalf("s3 %s: no server started in this script", args[0])
		}
		switch args[0] {
		case "pause":
			srv.Pause()
		case "resume":
			ts.Check(srv.Resume())
		case "freeze":
			ts.Check(srv.Freeze())
		case "thaw":
			ts.Check(srv.Thaw())
		}
		return
	}
	lock, readonly := false, false
	for _, a := range args {
		switch a {
		case "lock":
			lock = true
		case "readonly":
			readonly = true
		default:
			ts.Fatalf("usage: s3 [lock] [readonly]")
		}
	}
	srv, err := s3test.StartServer() // [versitygw] skips a script where it is missing
	ts.Check(err)
	scriptServersMu.Lock()
	scriptServers[ts] = srv
	scriptServersMu.Unlock()
	ts.Defer(func() {
		_ = srv.Stop()
		scriptServersMu.Lock()
		delete(scriptServers, ts)
		scriptServersMu.Unlock()
	})
	bucket := "cas-script"
	ts.Check(srv.CreateBucket(bucket, lock))
	ts.Check(srv.CreateBucket("cas-plain", false))
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		ts.Setenv(k, v)
	}
	ts.Setenv("S3_ENDPOINT", srv.Endpoint)
	ts.Setenv("S3_BUCKET", bucket)
	ts.Setenv("S3_DIR", filepath.Join(srv.Dir, bucket))
	if readonly {
		ro, err := srv.StartReadOnly()
		ts.Check(err)
		ts.Defer(func() { _ = ro.Stop() })
		ts.Setenv("S3_RO_ENDPOINT", ro.Endpoint)
	}
}

// scriptServers are the servers the s3 command started, by script.
var (
	scriptServersMu sync.Mutex
	scriptServers   = map[*testscript.TestScript]*s3test.Server{}
)

// exits CODE PROG [ARGS...] runs PROG and checks its exit status; stdout
// and stderr are kept for the next stdout/stderr/cmp commands.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// capture VAR [REGEXP] sets $VAR to the first submatch of REGEXP (or the
// whole match if it has no group) in the last command's stdout; without
// REGEXP, to the whole stdout without surrounding space.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: capture VAR [REGEXP]")
	}
	out := ts.ReadFile("stdout")
	val := strings.TrimSpace(out)
	if len(args) == 2 {
		m := regexp.MustCompile(`(?m)` + args[1]).FindStringSubmatch(out)
		if m == nil {
			ts.Fatalf("capture: no match for %#q in stdout", args[1])
		}
		val = m[len(m)-1]
	}
	ts.Setenv(args[0], val)
}

// jsonget PATH... prints "PATH=VALUE" for each dotted PATH (object keys
// and array indexes, e.g. "problems.0.path") into the last command's JSON
// stdout, VALUE in compact JSON. A missing path fails.
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: jsonget PATH...")
	}
	var doc any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &doc); err != nil {
		ts.Fatalf("jsonget: stdout is not JSON: %v", err)
	}
	var b strings.Builder
	for _, p := range args {
		v := doc
		for _, k := range strings.Split(p, ".") {
			switch x := v.(type) {
			case map[string]any:
				var ok bool
				if v, ok = x[k]; !ok {
					ts.Fatalf("jsonget: %s: no key %q", p, k)
				}
			case []any:
				i, err := strconv.Atoi(k)
				if err != nil || i < 0 || i >= len(x) {
					ts.Fatalf("jsonget: %s: no index %q in an array of %d", p, k, len(x))
				}
				v = x[i]
			default:
				ts.Fatalf("jsonget: %s: %q is below a scalar", p, k)
			}
		}
		enc, err := json.Marshal(v)
		ts.Check(err)
		fmt.Fprintf(&b, "%s=%s\n", p, enc)
	}
	fmt.Fprint(ts.Stdout(), b.String())
}

// jsonmask KEY... checks that the last command's stdout is JSON and
// replaces the scalar value of every KEY, at any depth, by "*": what is
// left can be compared with a golden file that pins the shape and the
// stable values.
func cmdJSONMask(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: jsonmask KEY...")
	}
	out := ts.ReadFile("stdout")
	if !json.Valid([]byte(out)) {
		ts.Fatalf("jsonmask: stdout is not JSON")
	}
	for _, k := range args {
		re := regexp.MustCompile(`(?m)^(\s*"` + regexp.QuoteMeta(k) + `": )([^\[{\n][^\n]*?)(,?)$`)
		out = re.ReplaceAllString(out, `$1"*"$3`)
	}
	fmt.Fprint(ts.Stdout(), out)
}

// awkwardTree is what mkfiles writes: names cas must keep byte-exact, and
// every kind of entry a tree holds.
var awkwardTree = []struct {
	path string
	kind byte // 'f' file, 'x' executable, 'd' directory, 'l' symlink
	data string
}{
	{"with space.txt", 'f', "space\n"},
	{"new\nline", 'f', "newline\n"},
	{"bad\xffname", 'f', "\x00\x01\xfe\xff not utf-8 inside either\n"},
	{"tab\tand \"quote\"", 'f', "tab\n"},
	{"-dash", 'f', "dash\n"},
	{".hidden", 'f', "hidden\n"},
	{strings.Repeat("n", 255), 'f', "a 255-byte name\n"},
	{"ünïcödé.txt", 'f', "utf-8\n"},
	{"colon:name", 'f', "colon\n"},
	{"empty", 'f', ""},
	{"run.sh", 'x', "#!/bin/sh\necho hi\n"},
	{"emptydir", 'd', ""},
	{"nested/empty/deeper", 'd', ""},
	{"nested/dir with space/file", 'f', "deep\n"},
	{"nested/tool", 'x', "#!/bin/sh\n"},
	{"link-to-file", 'l', "with space.txt"},
	{"link-to-dir", 'l', "nested"},
	{"nested/link-up", 'l', "../run.sh"},
	{"dangling", 'l', "does/not/exist"},
	{"absolute", 'l', "/nonexistent/absolute/target"},
}

// mkfiles DIR writes awkwardTree under DIR (which must not exist yet):
// names txtar cannot express.
func cmdMkfiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkfiles DIR")
	}
	root := ts.MkAbs(args[0])
	ts.Check(os.Mkdir(root, 0o755))
	for _, e := range awkwardTree {
		p := filepath.Join(root, e.path)
		ts.Check(os.MkdirAll(filepath.Dir(p), 0o755))
		switch e.kind {
		case 'f':
			ts.Check(os.WriteFile(p, []byte(e.data), 0o644))
		case 'x':
			ts.Check(os.WriteFile(p, []byte(e.data), 0o755))
			ts.Check(os.Chmod(p, 0o755)) // whatever the umask
		case 'd':
			ts.Check(os.MkdirAll(p, 0o755))
		case 'l':
			ts.Check(os.Symlink(e.data, p))
		}
	}
}

// mkrand FILE SIZE writes SIZE deterministic pseudo-random (incompressible)
// bytes, the same for the same FILE base name and SIZE on every machine.
// SIZE may end in K or M (KiB, MiB). Missing parent directories are made.
func cmdMkrand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkrand FILE SIZE")
	}
	s, mult := args[1], 1
	switch {
	case strings.HasSuffix(s, "K"):
		s, mult = strings.TrimSuffix(s, "K"), 1<<10
	case strings.HasSuffix(s, "M"):
		s, mult = strings.TrimSuffix(s, "M"), 1<<20
	}
	n, err := strconv.Atoi(s)
	ts.Check(err)
	var seed [32]byte
	copy(seed[:], filepath.Base(args[0]))
	buf := make([]byte, n*mult)
	_, _ = rand.NewChaCha8(seed).Read(buf)
	name := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(filepath.Dir(name), 0o755))
	ts.Check(os.WriteFile(name, buf, 0o644))
}

// mkfifo PATH makes a named pipe.
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkfifo PATH")
	}
	ts.Check(syscall.Mkfifo(ts.MkAbs(args[0]), 0o644))
}

// treeeq WANT GOT checks that two trees are the same as cas promises to
// keep them: the same names (as bytes), kinds, file contents, owner exec
// bits, symlink targets and (empty) directories. ! treeeq checks they differ.
func cmdTreeEq(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: treeeq WANT GOT")
	}
	diffs := treeDiff(ts.MkAbs(args[0]), ts.MkAbs(args[1]), ".")
	switch {
	case neg && len(diffs) == 0:
		ts.Fatalf("%s and %s are the same tree", args[0], args[1])
	case !neg && len(diffs) > 0:
		for _, d := range diffs {
			ts.Logf("%s", d)
		}
		ts.Fatalf("%s and %s differ in %d places", args[0], args[1], len(diffs))
	}
}

func treeDiff(want, got, rel string) []string {
	wi, werr := os.Lstat(want)
	gi, gerr := os.Lstat(got)
	switch {
	case werr != nil:
		return []string{fmt.Sprintf("%q: %v", rel, werr)}
	case gerr != nil:
		return []string{fmt.Sprintf("%q: missing: %v", rel, gerr)}
	case wi.Mode().Type() != gi.Mode().Type():
		return []string{fmt.Sprintf("%q: got type %v, want %v", rel, gi.Mode().Type(), wi.Mode().Type())}
	}
	switch wi.Mode().Type() {
	case fs.ModeSymlink:
		wt, err1 := os.Readlink(want)
		gt, err2 := os.Readlink(got)
		if err := errors.Join(err1, err2); err != nil {
			return []string{fmt.Sprintf("%q: %v", rel, err)}
		}
		if wt != gt {
			return []string{fmt.Sprintf("%q: got link to %q, want %q", rel, gt, wt)}
		}
	case 0:
		var out []string
		if w, g := wi.Mode()&0o100, gi.Mode()&0o100; w != g {
			out = append(out, fmt.Sprintf("%q: got mode %v, want %v (exec bit)", rel, gi.Mode(), wi.Mode()))
		}
		wb, err1 := os.ReadFile(want)
		gb, err2 := os.ReadFile(got)
		if err := errors.Join(err1, err2); err != nil {
			return append(out, fmt.Sprintf("%q: %v", rel, err))
		}
		if !bytes.Equal(wb, gb) {
			out = append(out, fmt.Sprintf("%q: got %d bytes %q, want %d bytes %q", rel, len(gb), trunc(gb), len(wb), trunc(wb)))
		}
		return out
	case fs.ModeDir:
		names := func(dir string) ([]string, error) {
			ents, err := os.ReadDir(dir)
			var ns []string
			for _, e := range ents {
				ns = append(ns, e.Name())
			}
			return ns, err
		}
		wn, err1 := names(want)
		gn, err2 := names(got)
		if err := errors.Join(err1, err2); err != nil {
			return []string{fmt.Sprintf("%q: %v", rel, err)}
		}
		var out []string
		for _, n := range gn {
			if !slices.Contains(wn, n) {
				out = append(out, fmt.Sprintf("%q: unexpected entry", filepath.Join(rel, n)))
			}
		}
		for _, n := range wn {
			out = append(out, treeDiff(filepath.Join(want, n), filepath.Join(got, n), filepath.Join(rel, n))...)
		}
		return out
	default:
		return []string{fmt.Sprintf("%q: special file of type %v", rel, wi.Mode().Type())}
	}
	return nil
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// flipbyte FILE OFFSET flips the lowest bit of the byte at OFFSET in FILE
// (a negative OFFSET counts from the end). FILE may be a glob that must
// match exactly one file, or with -first the first of the files it
// matches in lexical order; read-only files (packs are 0444) are made
// writable first and their mode is put back.
// editfile FILE REGEXP REPLACEMENT replaces every match of REGEXP in FILE
// (which must match) with REPLACEMENT ($1 expands), writing the file in
// place, as someone with write access to a bucket's disk could.
func cmdEditFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: editfile FILE REGEXP REPLACEMENT")
	}
	name := ts.MkAbs(args[0])
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	fi, err := os.Stat(name)
	ts.Check(err)
	b, err := os.ReadFile(name)
	ts.Check(err)
	if !re.Match(b) {
		ts.Fatalf("editfile: %s does not match %s", args[1], name)
	}
	b = re.ReplaceAll(b, []byte(args[2]))
	ts.Check(os.Chmod(name, fi.Mode().Perm()|0o200))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	ts.Check(err)
	_, err = f.Write(b)
	ts.Check(err)
	ts.Check(f.Close())
	ts.Check(os.Chmod(name, fi.Mode().Perm()))
}

func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	first := len(args) == 3 && args[0] == "-first"
	if first {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte [-first] FILE OFFSET")
	}
	matches, err := filepath.Glob(ts.MkAbs(args[0]))
	ts.Check(err)
	if first && len(matches) > 1 {
		matches = matches[:1] // Glob sorts
	}
	if len(matches) != 1 {
		ts.Fatalf("flipbyte: %s matches %d files, want 1: %q", args[0], len(matches), matches)
	}
	name := matches[0]
	off, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	fi, err := os.Stat(name)
	ts.Check(err)
	if off < 0 {
		off += fi.Size()
	}
	if off < 0 || off >= fi.Size() {
		ts.Fatalf("flipbyte: offset %s outside %s (%d bytes)", args[1], name, fi.Size())
	}
	ts.Check(os.Chmod(name, fi.Mode().Perm()|0o200))
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	ts.Check(err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	ts.Check(err)
	b[0] ^= 1
	_, err = f.WriteAt(b, off)
	ts.Check(err)
	ts.Check(f.Close())
	ts.Check(os.Chmod(name, fi.Mode().Perm()))
	ts.Logf("flipped byte %d of %s", off, name)
}
