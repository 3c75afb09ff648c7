package report

import (
	"fmt"
	"strings"
)

// md escapes text from a manifest for Markdown: non-printing characters
// spelled out (Show), HTML's <, > and & as entities, and every character
// Markdown gives a meaning (emphasis, links, code, tables) backslashed.
func md(s string) string {
	var b strings.Builder
	for _, c := range Show(s) {
		switch c {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '#', '+', '-', '.', '!', '|', '~', '"', '\'', ':':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// fence is a code fence longer than any run of backticks in s.
func fence(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

func (rep *Report) markdown(p *page, svgs map[string]string) []byte {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	row := func(cells ...string) { w("| %s |\n", strings.Join(cells, " | ")) }
	head := func(cells ...string) {
		row(cells...)
		seps := make([]string, len(cells))
		for i := range seps {
			seps[i] = "---"
		}
		row(seps...)
	}
	run := rep.Run
	w("# Run %s\n\n", md(run.Name))
	w("`%s`  \n%s, %s (exit %d), started %s, %.1f s", run.Digest, md(run.Kind), md(run.Status), run.Exit, when(run.Started), run.Seconds)
	if run.Seed != nil {
		w(", seed %d", *run.Seed)
	}
	w("; command %s in %s", md(strings.Join(run.Command, " ")), md(run.WorkDir))
	if run.Tool != "" {
		w(", recorded by %s", md(run.Tool))
	}
	w("\n\n")

	w("## Verdict\n\n")
	head("", "state", "")
	for _, l := range rep.Verdict() {
		row("**"+label(l.Key)+"**", l.Word, md(l.Text))
	}
	w("\n")
	if len(rep.Pins) > 0 {
		w("### Pins\n\n")
		head("pin", "signature", "key", "message")
		for _, pi := range rep.Pins {
			row(md(pi.Name), md(pi.Signature.State+" "+pi.Signature.Detail), "`"+pi.Signature.KeyID+"`", md(pi.Message))
		}
		w("\n")
	}
	repro := func(title string, r Repro) {
		res := r.Result
		w("### %s\n\n%s", title, md(res.Verdict))
		if res.Reason != "" {
			w(": %s", md(res.Reason))
		}
		if res.Diagnosis != "" {
			w(" (%s)", md(res.Diagnosis))
		}
		w("; exit %d, tolerance %s\n\n", res.ExitCode, num(res.Tolerance))
		head("metric", "recorded", "reproduced", "relative difference", "within")
		for _, m := range res.Metrics {
			within := "yes"
			if !m.Within {
				within = "**NO**"
			}
			row(md(m.Name), num(m.Reference), reproduced(m), relDiff(m), within)
		}
		w("\n")
	}
	if rep.Of != nil {
		repro("Reproduction of "+md(rep.Of.Name), *rep.Of)
	}
	for _, r := range rep.Repros {
		repro("Reproduction "+md(r.Name), r)
	}
	if len(rep.RNG) > 0 {
		w("### RNG states of the checkpoints\n\n")
		head("output", "checkpoint", "kind", "at", "fingerprint", "checked")
		for _, g := range rep.RNG {
			row(md(g.Output), md(g.Checkpoint), md(g.Kind), md(g.Path), md(g.Fingerprint), md(orDash(g.Checked)))
		}
		w("\n")
	}
	for _, n := range rep.Notes {
		w("%s\n\n", md(n))
	}

	w("## Lineage\n\n![lineage: inputs, run, outputs, checkpoints, pins and reproductions](%s)\n\n", svgs["lineage"])
	head("node", "name", "digest", "size", "recorded at", "restore")
	for _, n := range rep.Nodes {
		size := "-"
		if n.Size > 0 {
			size = Size(n.Size)
		}
		row(n.Kind, md(n.Name), "`"+n.Digest.String()+"`", size, md(n.Path), "`"+n.Restore+"`")
	}
	w("\n## Metrics\n\n")
	if len(rep.Metrics) == 0 {
		w("The run recorded no metrics.\n\n")
	} else {
		head("metric", "value")
		for _, m := range rep.Metrics {
			row(md(m.Name), num(m.Value))
		}
		w("\n")
	}
	if len(rep.Group) > 0 {
		w("### Over %d runs\n\n", len(rep.Group))
		cells := []string{"run", "seed"}
		for _, s := range rep.Spread {
			cells = append(cells, md(s.Metric))
		}
		head(cells...)
		for _, g := range rep.Group {
			seed := "-"
			if g.Seed != nil {
				seed = fmt.Sprint(*g.Seed)
			}
			cells := []string{md(g.Name), seed}
			for _, s := range rep.Spread {
				v, ok := g.Metrics[s.Metric]
				cells = append(cells, map[bool]string{true: num(v), false: "-"}[ok])
			}
			row(cells...)
		}
		w("\n")
		head("metric", "n", "mean", "std dev", "min", "median", "max", "95% CI (Student t)", "CV", "verdict")
		for _, s := range rep.Spread {
			row(md(s.Metric), fmt.Sprint(s.N), num(s.Mean), num(s.StdDev), num(s.Min), num(s.Median), num(s.Max),
				"["+num(s.CI95[0])+", "+num(s.CI95[1])+"]", strconvG(s.CV, 3), statsVerdict(s))
		}
		w("\n")
		for i, d := range p.Dists {
			w("![%s](%s)\n\n", md(d.Description), svgs[fmt.Sprintf("spread-%d", i+1)])
		}
	}
	if len(p.CurveSVGs) > 0 {
		w("### Per-step curves (metrics history)\n\n")
		for i, c := range p.CurveSVGs {
			w("![%s](%s)\n\n", md(c.Description), svgs[fmt.Sprintf("curve-%d", i+1)])
		}
	}

	w("## Environment\n\n")
	switch {
	case !rep.Env.Compared:
		w("Not compared with the machine that generated the report.\n\n")
	case len(rep.Env.Diffs) == 0:
		w("This machine (%s) matches the recorded environment.\n\n", md(rep.Env.Here))
	default:
		w("**This report was generated on %s, which differs from the recorded machine in %d ways (marked ⚠).**\n\n", md(rep.Env.Here), len(rep.Env.Diffs))
	}
	envTable := func(rows []EnvRow) {
		head("", "recorded", "here")
		for _, r := range rows {
			key := md(r.Key)
			if r.Differs {
				key = "⚠ **" + key + "**"
			}
			row(key, md(r.Value), md(r.Here))
		}
		w("\n")
	}
	envTable(rep.Env.Rows)
	if len(rep.Env.Vars) > 0 {
		w("### Variables\n\n")
		envTable(rep.Env.Vars)
	}
	if len(rep.Env.Diffs) > 0 {
		w("### Differences (recorded → here)\n\n")
		head("section", "key", "recorded", "here")
		for _, d := range rep.Env.Diffs {
			row(md(d.Section), md(d.Key), md(d.A), md(d.B))
		}
		w("\n")
	}

	w("## Code\n\n")
	c := rep.Code
	if !c.Git {
		w("Not in a git repository")
		if c.Reason != "" {
			w(": %s", md(c.Reason))
		}
		w(".\n\n")
	} else {
		head("", "")
		row("commit", md(c.Commit))
		row("branch", md(c.Branch))
		row("remote", md(c.Remote))
		row("dirty", fmt.Sprint(c.Dirty))
		diff := "none"
		if c.PatchSize > 0 {
			diff = Size(c.PatchSize) + " (`" + c.Patch.Short() + "`)"
		}
		row("recorded diff", diff)
		if len(c.Untracked) > 0 {
			var u []string
			for _, f := range c.Untracked {
				u = append(u, md(f))
			}
			row("untracked", strings.Join(u, ", "))
		}
		w("\n")
		if c.Diff != "" {
			f := fence(c.Diff)
			w("The recorded diff:\n\n%sdiff\n%s\n%s\n\n", f, strings.TrimRight(c.Diff, "\n"), f)
		}
	}
	if len(rep.Checks) > 0 {
		w("## Verification\n\n")
		head("state", "what", "detail")
		for _, ch := range rep.Checks {
			row(ch.State, md(ch.What), md(ch.Detail))
		}
		w("\n")
	}
	w("---\nGenerated %s by %s.\n", when(rep.Generated), md(rep.Tool))
	return []byte(b.String())
}
