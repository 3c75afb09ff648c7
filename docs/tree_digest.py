#!/usr/bin/env python3
"""Usage: tree_digest.py PATH...  prints the cas digest ("blake3:<hex>") of each
file or directory, computed with b3sum alone as docs/FORMAT.md specifies. Like
cas it follows a symlink given as PATH, skips FIFOs, sockets, devices and
directories named ".cas", and keeps names as raw bytes; it does not apply
.casignore files or --exclude patterns."""
import os, stat, subprocess, sys


def b3sum(paths=(), data=None):
    """Hex BLAKE3 of each file in paths, or of data (piped to stdin)."""
    if data is not None:
        out = subprocess.run(["b3sum", "--no-names"], input=data, capture_output=True, check=True).stdout
        return [out[:64].decode()]
    hexes = []
    for i in range(0, len(paths), 512):  # stay well below ARG_MAX
        batch = list(paths[i:i + 512])
        out = subprocess.run(["b3sum", "--no-names", "--"] + batch, capture_output=True, check=True).stdout
        hexes += [line.lstrip(b"\\")[:64].decode() for line in out.splitlines()]
    assert len(hexes) == len(paths), "b3sum printed an unexpected number of lines"
    return hexes


def tree(path):
    """Return (hex digest, size) of the directory at path (bytes)."""
    entries, files = [], []  # entries: [kind, hex or None, size, name]
    for name in sorted(os.listdir(path)):  # bytes in, bytes sorted bytewise
        p = os.path.join(path, name)
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            if name != b".cas":  # a store never stores itself
                entries.append([b"dir", *tree(p), name])
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(p)
            entries.append([b"link", b3sum(data=target)[0], len(target), name])
        elif stat.S_ISREG(st.st_mode):
            kind = b"exec" if st.st_mode & 0o111 else b"file"
            entries.append([kind, None, st.st_size, name])
            files.append(p)
        # FIFOs, sockets and devices are skipped.
    digests = iter(b3sum(files))
    enc = [b"cas-tree-v1\n"]
    for kind, hexd, size, name in entries:
        hexd = hexd or next(digests)
        enc.append(b"%s %s %d %d %s\n" % (kind, hexd.encode(), size, len(name), name))
    return b3sum(data=b"".join(enc))[0], sum(e[2] for e in entries)


def digest(path):
    p = os.path.abspath(os.fsencode(path))  # absolute: never "-" (stdin) for b3sum
    st = os.stat(p)
    if stat.S_ISDIR(st.st_mode):
        return "blake3:" + tree(p)[0]
    if stat.S_ISREG(st.st_mode):
        return "blake3:" + b3sum([p])[0]
    sys.exit(f"{path}: not a regular file or directory")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        print(digest(arg))
