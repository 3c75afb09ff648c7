import pickle, collections, struct, sys

class Foo:
    def __init__(self): self.a = 1; self.w = [b'\x01']

def d(v, seen=()):
    if v is None: return 'N'
    if v is True: return 'T'
    if v is False: return 'F'
    if isinstance(v, int): return 'i%d' % v
    if isinstance(v, float): return 'f' + struct.pack('<d', v).hex()
    if isinstance(v, str): return 's' + v.encode('utf-8', 'surrogatepass').hex()
    if isinstance(v, (bytes, bytearray)): return 'b' + bytes(v).hex()
    if isinstance(v, tuple): return '(' + ','.join(d(x, seen) for x in v) + ')'
    if id(v) in seen: return '<cycle>'
    seen = seen + (id(v),)
    if isinstance(v, list): return '[' + ','.join(d(x, seen) for x in v) + ']'
    if isinstance(v, (set, frozenset)): return ('f' if isinstance(v, frozenset) else '') + '{' + ','.join(sorted(d(x, seen) for x in v)) + '}'
    if isinstance(v, dict): return '{' + ','.join(d(k, seen) + ':' + d(x, seen) for k, x in v.items()) + '}'
    if isinstance(v, Foo): return 'O__main__.Foo' + d(v.__dict__, seen)
    raise TypeError(type(v))

shared = [1, 2]
rec = []
rec.append(rec)
v = {
    'none': None, 't': True, 'f': False,
    'small': 7, 'neg': -300, 'i16': 65535, 'i32': 2**31 - 1, 'i64': -2**63, 'u64': 2**64 - 1,
    'big': 2**100 + 5, 'negbig': -(2**70),
    'float': 1.5, 'inf': float('inf'), 'tiny': 5e-324,
    'str': 'h\u00e9llo \u2603 \U0001F600', 'empty': '', 'bytes': b'\x00\xff\n', 'bytearray': bytearray(b'ab'),
    'tuple': (1, 'a', (2, 3)), 'empty_tuple': (), 't1': (1,), 't2': (1, 2), 't3': (1, 2, 3),
    'list': [1, [2, [3]]], 'set': {1, 'x'}, 'frozenset': frozenset({2}),
    'shared': (shared, shared),
    'od': collections.OrderedDict([('b', 1), ('a', 2)]),
    'long_str': 'x' * 300, 'long_bytes': b'y' * 300,
    'rec': rec,
    3: 'int key', ('tk', 1): 'tuple key',
    'obj': Foo(),
}
for p in range(6):
    open('p%d.pkl' % p, 'wb').write(pickle.dumps(v, protocol=p))
open('expected.txt', 'w').write(d(v) + '\n')
