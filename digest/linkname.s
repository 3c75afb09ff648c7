// This file is empty on purpose: a package with a .s file may declare
// functions without a body, as zeebo.go does for the kernels it links
// in by name (go:linkname).
