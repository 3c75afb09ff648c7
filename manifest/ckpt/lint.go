package ckpt

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Warning codes of Lint.
const (
	WarnNoTorchRNG   = "no-torch-rng"      // optimizer state but no torch CPU RNG state
	WarnNoNumpyRNG   = "no-numpy-rng"      // optimizer state but no numpy RNG state
	WarnNoPythonRNG  = "no-python-rng"     // optimizer state but no Python random state
	WarnNoCUDARNG    = "no-cuda-rng"       // tensors saved from CUDA but no CUDA RNG state
	WarnFewCUDARNG   = "cuda-rng-devices"  // tensors on more CUDA devices than CUDA RNG states
	WarnWeightsOnly  = "no-training-state" // a torch checkpoint without optimizer or RNG state
	WarnUnreadable   = "unreadable"        // something in the file could not be read
	WarnBadRNGDigest = "rng-unreadable"    // an RNG state found but not fingerprinted
)

// Warning is one thing a careful researcher wants to know before relying
// on a checkpoint to resume a run bit-exactly.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Lint checks a report for what resuming bit-exactly needs: with optimizer
// state present, the torch, numpy and Python RNG states; with tensors
// saved from CUDA devices, a CUDA RNG state per device; and a readable file.
func Lint(r *Report) []Warning {
	var ws []Warning
	warn := func(code, format string, a ...any) {
		ws = append(ws, Warning{Code: code, Message: fmt.Sprintf(format, a...)})
	}
	kinds := map[string]int{}
	for _, s := range r.RNG {
		kinds[s.Kind]++
		if s.Fingerprint.IsZero() {
			warn(WarnBadRNGDigest, "%s state at %s could not be read", s.Kind, displayPath(s.Path))
		}
	}
	torchFormat := r.Format == FormatTorchZip || r.Format == FormatTorchLegacy || r.Format == FormatPickle
	if len(r.Optimizers) > 0 {
		where := strings.Join(r.Optimizers, ", ")
		if kinds[RNGTorchCPU] == 0 {
			warn(WarnNoTorchRNG, "optimizer state (%s) but no torch RNG state: save torch.get_rng_state() to resume bit-exactly", where)
		}
		if kinds[RNGNumpyMT19937]+kinds[RNGNumpyGenerator] == 0 {
			warn(WarnNoNumpyRNG, "optimizer state (%s) but no numpy RNG state: save np.random.get_state() (or your Generator's bit_generator.state)", where)
		}
		if kinds[RNGPython] == 0 {
			warn(WarnNoPythonRNG, "optimizer state (%s) but no Python random state: save random.getstate()", where)
		}
	} else if torchFormat && len(r.RNG) == 0 && len(r.Tensors) > 0 {
		warn(WarnWeightsOnly, "weights only: no optimizer or RNG state, so training cannot resume from this checkpoint")
	}
	devices := map[int]bool{}
	for _, t := range r.Tensors {
		if t.RNG != "" {
			continue
		}
		if d, ok := strings.CutPrefix(t.Device, "cuda"); ok {
			n := 0
			if i, err := strconv.Atoi(strings.TrimPrefix(d, ":")); err == nil {
				n = i
			}
			devices[n] = true
		}
	}
	if len(devices) > 0 {
		var ds []string
		top := 0
		for d := range devices {
			ds = append(ds, "cuda:"+strconv.Itoa(d))
			top = max(top, d)
		}
		sort.Strings(ds)
		switch n := kinds[RNGTorchCUDA]; {
		case n == 0:
			warn(WarnNoCUDARNG, "tensors saved from %s but no CUDA RNG state: save torch.cuda.get_rng_state_all()", strings.Join(ds, ", "))
		case n <= top:
			warn(WarnFewCUDARNG, "tensors saved from %s but CUDA RNG state for %d device(s)", strings.Join(ds, ", "), n)
		}
	}
	for _, p := range r.Problems {
		warn(WarnUnreadable, "%s", p)
	}
	return ws
}
