// Package report turns a run (or a pin, or repeated runs) into one page a
// reviewer can read: the verdict at the top (signature, bytes verified,
// RNG fingerprints, reproductions), the lineage as a picture, the spread
// of metrics over seeds and per-step curves, the environment and the code.
//
// Build gathers what the page shows from a store, deciding nothing itself:
// every verdict comes from the library that owns it (manifest.Verify and
// VerifyPin, manifest.JudgeRecorded, manifest.Summarize, attest). HTML and
// Markdown render the result: one self-contained file (inline SVG, inline
// CSS, no script, no request of any kind) or Markdown tables with SVG
// files beside them. Every string that comes from a manifest is escaped by
// html/template, and shown with its non-printing characters spelled out.
//
// report sits between cli and manifest: it imports manifest and cas and
// is imported by cli only. It never prints, never reads the wall clock
// (the caller passes the time of generation), and never captures this
// machine's environment itself (the caller passes it).
package report
