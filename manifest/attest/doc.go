// Package attest signs and checks the statements behind published pins,
// in the layouts the supply-chain ecosystem already reads: ed25519 keys
// in PEM files (PKCS#8 private, PKIX public, as openssl and cosign write
// them), an in-toto Statement v1 naming the pinned digest, wrapped in a
// DSSE envelope whose signature covers the DSSE pre-authentication
// encoding (PAE) of the payload.
//
// A key is named by its key ID: the lowercase hex SHA-256 of the public
// key's PKIX DER encoding (what `openssl pkey -pubin -outform DER | sha256sum`
// prints). The signer's key ID goes into the envelope's keyid and into the
// statement's predicate, so a reviewer holding several keys knows which one
// to try and a wrong key is told apart from a forged signature.
//
// The package depends only on the digest package: the cli builds a
// statement from a pin, signs it, and the cas package stores the envelope
// in the pin as opaque JSON. It must not read a store or print, and it
// never decides what a pin keeps: only whether a statement is signed.
package attest
