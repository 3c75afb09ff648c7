package ckpt

import (
	"strconv"

	"github.com/cas-ml/cas/digest"
)

// walker visits the object graph of a pickle once, in pickle order,
// collecting tensors, RNG states and optimizer state dicts by structure.
type walker struct {
	in     *input
	rep    *Report
	sites  []site
	onPath map[any]bool // containers on the path from the root: cycles
	visits int
}

// site is a tensor found in the graph, resolved against its storage after
// the walk.
type site struct {
	tensor int // index in rep.Tensors
	torch  *TorchTensor
	array  *NDArray
	rng    int // index in rep.RNG, or -1
}

// inspectGraph fills rep from a pickle's root value; regions holds the
// bytes of each torch storage by key.
func (in *input) inspectGraph(rep *Report, root Value, regions map[string]region) error {
	w := &walker{in: in, rep: rep, onPath: map[any]bool{}}
	if err := w.walk(root, "", 0); err != nil {
		return err
	}
	checked := map[string]bool{}
	for _, s := range w.sites {
		t := &rep.Tensors[s.tensor]
		switch {
		case s.torch != nil && s.torch.Invalid != "":
			t.Shape = nonNil(s.torch.Shape)
			rep.problem("%s: %s", displayPath(t.Path), s.torch.Invalid)
		case s.torch != nil:
			st := s.torch.Storage
			g, ok := regions[st.Key]
			if !ok {
				t.Shape = nonNil(s.torch.Shape)
				rep.problem("%s: storage %s is not in the file", displayPath(t.Path), st.Key)
				continue
			}
			if st.Type.ElemSize == 0 {
				t.Shape = nonNil(s.torch.Shape)
				rep.problem("%s: unknown storage type %s", displayPath(t.Path), st.Type.Name)
				continue
			}
			if !checked[st.Key] {
				checked[st.Key] = true
				if want, ok := mulNonNeg(st.Numel, st.Type.ElemSize); ok && want != g.size {
					rep.problem("storage %s: declares %d elements of %d bytes, the file holds %d bytes", st.Key, st.Numel, st.Type.ElemSize, g.size)
				}
			}
			in.hashTensor(rep, t, g, 0, st.Type.ElemSize, s.torch.Offset, s.torch.Shape, s.torch.Stride)
			if s.rng >= 0 && !t.Digest.IsZero() {
				raw, err := g.read(t.Offset, t.Bytes)
				if err != nil {
					rep.problem("%s: %v", displayPath(t.Path), err)
					continue
				}
				rep.RNG[s.rng].setRaw(raw)
			}
		case s.array != nil:
			a := s.array
			switch {
			case a.BadShape != "":
				t.Shape = []int64{}
				rep.problem("%s: %s", displayPath(t.Path), a.BadShape)
			case a.Data != nil && a.DType.Size > 0:
				stride := contiguousStrides(a.Shape)
				if a.Fortran {
					stride = fortranStrides(a.Shape)
				}
				in.hashTensor(rep, t, region{mem: a.Data, size: int64(len(a.Data))}, 0, a.DType.Size, 0, a.Shape, stride)
			case a.Blob != nil && !a.Fortran:
				t.Shape = nonNil(a.Shape)
				t.Bytes, t.Digest = a.Blob.Len, a.Blob.Digest
			default:
				t.Shape = nonNil(a.Shape)
				if a.DType.Kind != 'O' {
					rep.problem("%s: array data not readable", displayPath(t.Path))
				}
			}
		}
	}
	for i := range rep.RNG {
		if rep.RNG[i].Fingerprint.IsZero() {
			rep.problem("%s: %s state not readable", displayPath(rep.RNG[i].Path), rep.RNG[i].Kind)
		}
	}
	return nil
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func join(p, seg string) string {
	if p == "" {
		return seg
	}
	return p + "." + seg
}

func (w *walker) walk(v Value, p string, depth int) error {
	w.visits++
	if w.visits > w.in.lim.MaxElements {
		return limit("object graph has more than %d nodes (shared references?)", w.in.lim.MaxElements)
	}
	if depth > w.in.lim.MaxDepth {
		return limit("object graph nested deeper than %d", w.in.lim.MaxDepth)
	}
	switch x := v.(type) {
	case *TorchTensor:
		w.tensor(x, p, -1)
	case *NDArray:
		w.array(x, p)
	case Tuple:
		return w.seq(x, p, depth)
	case *List:
		if w.onPath[x] {
			return nil
		}
		w.onPath[x] = true
		defer delete(w.onPath, x)
		return w.seq(x.Items, p, depth)
	case *Set:
		if w.onPath[x] {
			return nil
		}
		w.onPath[x] = true
		defer delete(w.onPath, x)
		for i, it := range x.Items {
			if err := w.walk(it, join(p, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	case *Dict:
		if w.onPath[x] {
			return nil
		}
		w.onPath[x] = true
		defer delete(w.onPath, x)
		if _, ok := x.Get("bit_generator"); ok {
			w.visits += 4 * mtWords // numpyGeneratorState reads up to a key's words
		}
		if s, ok := numpyGeneratorState(x); ok {
			w.rep.RNG = append(w.rep.RNG, s.at(p))
			return nil
		}
		if isOptimizerState(x) {
			w.rep.Optimizers = append(w.rep.Optimizers, p)
		}
		for i, k := range x.Keys {
			if err := w.walk(x.Values[i], join(p, keyString(k)), depth+1); err != nil {
				return err
			}
		}
	case *Object:
		if w.onPath[x] {
			return nil
		}
		w.onPath[x] = true
		defer delete(w.onPath, x)
		// An opaque object is transparent: what it holds sits at its path.
		for _, part := range []Value{x.State, x.Dict} {
			if part != nil && part != (*Dict)(nil) {
				if err := w.walk(part, p, depth+1); err != nil {
					return err
				}
			}
		}
		for i, it := range x.Items {
			if err := w.walk(it, join(p, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
		for i, it := range x.Args {
			if err := w.walk(it, join(p, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// seq walks a tuple or list: it may be an RNG state itself, or the list
// of per-device CUDA states get_rng_state_all returns.
func (w *walker) seq(items []Value, p string, depth int) error {
	// The checks below look at every item, and into the words of a
	// candidate state: count that work as visits.
	w.visits += len(items)
	if len(items) == 3 || len(items) == 5 {
		if inner, ok := seqItems(items[1]); ok {
			w.visits += len(inner)
		}
	}
	if w.visits > w.in.lim.MaxElements {
		return limit("object graph has more than %d nodes (shared references?)", w.in.lim.MaxElements)
	}
	if s, ok := seqRNGState(items); ok {
		w.rep.RNG = append(w.rep.RNG, s.at(p))
		return nil
	}
	allCUDA := len(items) > 0
	for _, it := range items {
		t, ok := it.(*TorchTensor)
		if !ok || !isCUDAState(t) {
			allCUDA = false
			break
		}
	}
	for i, it := range items {
		ip := join(p, strconv.Itoa(i))
		if allCUDA {
			w.tensor(it.(*TorchTensor), ip, i)
			continue
		}
		if err := w.walk(it, ip, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// tensor records a torch tensor; device is its index in a list of CUDA
// states, or -1.
func (w *walker) tensor(t *TorchTensor, p string, device int) {
	rec := Tensor{Path: p, DType: t.Storage.Type.DType, Shape: t.Shape, Device: t.Storage.Location, Storage: t.Storage.Key}
	s := site{tensor: len(w.rep.Tensors), torch: t, rng: -1}
	var st *RNGState
	switch {
	case isTorchCPUState(t):
		st = &RNGState{Kind: RNGTorchCPU, Path: p}
	case isCUDAState(t):
		st = &RNGState{Kind: RNGTorchCUDA, Path: p}
		if device >= 0 {
			st.Device = &device
		}
	}
	if st != nil {
		rec.RNG = st.Kind
		s.rng = len(w.rep.RNG)
		w.rep.RNG = append(w.rep.RNG, *st)
	}
	w.rep.Tensors = append(w.rep.Tensors, rec)
	w.sites = append(w.sites, s)
}

// array records a numpy array found in a pickle (outside an RNG state).
func (w *walker) array(a *NDArray, p string) {
	if a.DType == nil {
		a.DType = &NPDType{Descr: "?"}
	}
	rec := Tensor{Path: p, DType: a.DType.Name(), Shape: a.Shape, Storage: "pickle"}
	if a.DType.Kind == 'O' {
		rec.DType = "object"
	}
	if a.DType.bigEndian() {
		rec.Endian = "big"
	}
	w.sites = append(w.sites, site{tensor: len(w.rep.Tensors), array: a, rng: -1})
	w.rep.Tensors = append(w.rep.Tensors, rec)
}

// isOptimizerState says whether d looks like torch.optim's state_dict().
func isOptimizerState(d *Dict) bool {
	_, ok1 := d.Get("state")
	pg, ok2 := d.Get("param_groups")
	_, isList := pg.(*List)
	return ok1 && ok2 && isList
}

// setRaw fills a tensor-held RNG state from its bytes.
func (s *RNGState) setRaw(raw []byte) {
	s.Raw = raw
	s.Fingerprint = digest.Of(raw)
	s.Summary = tensorStateSummary(s.Kind, raw, s.Device)
}
