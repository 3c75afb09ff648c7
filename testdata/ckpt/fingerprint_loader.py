# Appended to the enc() function of docs/checkpoints.md by
# manifest/ckpt's TestFingerprintsMatchDocs: loads a torch zip
# checkpoint's data.pkl with the standard library only (torch and numpy
# classes stubbed, nothing executed) and prints, for each KEY, the hex of
# enc() of the RNG state stored under it, normalised as the page says.
#
#   python3 SCRIPT CHECKPOINT KEY...
import codecs, collections, io, pickle, struct, sys, zipfile


class _Array:
    def __init__(self, *args): pass

    def __setstate__(self, st):
        _, shape, dtype, fortran, raw = st
        self.words = list(struct.unpack('<%dI' % (len(raw) // 4), raw))

    def tolist(self): return self.words


class _DType:
    def __init__(self, *args): pass
    def __setstate__(self, st): pass


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'): return collections.OrderedDict
        if (module, name) == ('_codecs', 'encode'): return codecs.encode
        if name == '_reconstruct': return _Array
        if (module, name) == ('numpy', 'dtype'): return _DType
        return lambda *a: ('opaque', module, name)

    def persistent_load(self, pid): return pid


z = zipfile.ZipFile(sys.argv[1])
pkl = [n for n in z.namelist() if n.endswith('/data.pkl')][0]
obj = _Unpickler(io.BytesIO(z.read(pkl))).load()
for key in sys.argv[2:]:
    st = obj[key]
    if isinstance(st, tuple) and st and st[0] == 'MT19937':  # np.random.get_state()
        st = ('MT19937', st[1].tolist(), st[2], int(st[3]), st[4])
    print(enc(st).hex())
