package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagErrorInWords says what is wrong with a flag's value in words
// ("--seed: not an integer: "abc"") instead of the parser's own
// ("invalid argument … strconv.ParseInt: …"). Other flag errors (an
// unknown flag, a missing value) read well already and come back as they are.
func flagErrorInWords(err error) error {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return err
	}
	fl := ive.GetFlag()
	what := "not a valid value"
	switch t := fl.Value.Type(); {
	case strings.HasPrefix(t, "uint"):
		what = "not a whole number of 0 or more"
	case strings.HasPrefix(t, "int"):
		what = "not an integer"
	case strings.HasPrefix(t, "float"):
		what = "not a number"
	case t == "duration":
		what = "not a duration (like 90s, 15m or 2h)"
	case t == "bool":
		what = "not true or false"
	}
	if errors.Is(err, strconv.ErrRange) {
		what = "out of range"
	}
	return fmt.Errorf("--%s: %s: %q", fl.Name, what, ive.GetValue())
}

// argCountError says in words how many arguments cmd takes and how many
// it got ("diff takes two arguments, REF and REF|PATH; got one"),
// where cobra says "accepts 2 arg(s), received 1". The counts it takes
// are found by asking check, the command's own Args rule; the names of
// its arguments come from its Use line.
func argCountError(cmd *cobra.Command, check cobra.PositionalArgs, args []string) error {
	if cmd.HasAvailableSubCommands() && len(args) > 0 {
		return unknownCommand(cmd, args) // a mistyped subcommand, not a stray argument
	}
	// "diff", "remote add": printError puts "cas: " before the message.
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	const most = 8
	lo, hi := -1, -1
	for n := 0; n <= most; n++ {
		if check(cmd, make([]string, n)) == nil {
			if lo < 0 {
				lo = n
			}
			hi = n
		}
	}
	if lo < 0 {
		return fmt.Errorf("%s: wrong arguments (%d given)", path, len(args))
	}
	names := argNames(cmd.Use)
	var takes string
	switch {
	case hi == 0:
		takes = "takes no arguments"
	case hi == most && lo > 0:
		takes = "takes at least " + countOf(lo, names)
	case hi == most:
		takes = "takes any number of arguments"
	case lo == hi:
		takes = "takes " + countOf(lo, names)
	case lo == 0:
		takes = "takes at most " + countOf(hi, names)
	default:
		takes = fmt.Sprintf("takes %s to %s", numberWord(lo), countOf(hi, names))
	}
	got := numberWord(len(args))
	if len(args) > 0 && hi == 0 {
		got = strconv.Quote(args[0])
		if len(args) > 1 {
			got = fmt.Sprintf("%d: %q…", len(args), args[0])
		}
	}
	return fmt.Errorf("%s %s; got %s", path, takes, got)
}

// countOf is "two REFs", "one PATH", or "two arguments, REF and DEST".
func countOf(n int, names []string) string {
	if len(names) > 0 {
		same := true
		for _, x := range names[1:] {
			same = same && x == names[0]
		}
		switch {
		case same && n == 1:
			return "one " + names[0]
		case same || len(names) == 1:
			return numberWord(n) + " " + names[0] + "s"
		case len(names) == n:
			return numberWord(n) + " arguments, " + strings.Join(names[:n-1], ", ") + " and " + names[n-1]
		}
	}
	if n == 1 {
		return "one argument"
	}
	return numberWord(n) + " arguments"
}

// argNames are the arguments a Use line names ("diff REF REF|PATH" →
// REF, REF|PATH; "verify [REF]" → REF): its words after the command's
// name that are not flags, without the brackets of an optional one or
// the "..." of a repeated one.
func argNames(use string) []string {
	var names []string
	for _, w := range strings.Fields(use)[1:] {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") && !strings.Contains(w[1:], "[") {
			w = w[1 : len(w)-1]
		}
		w = strings.TrimSuffix(w, "...")
		if w == "" || strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.HasSuffix(w, "]") && !strings.Contains(w, "[") || w == "flags" {
			continue // a flag, [flags], or a word of an optional flag
		}
		names = append(names, w)
	}
	return names
}

// numberWord spells small counts: "none", "one" … "nine"; larger ones in digits.
func numberWord(n int) string {
	words := []string{"none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	if n >= 0 && n < len(words) {
		return words[n]
	}
	return strconv.Itoa(n)
}

// closestCommand is the subcommand of cmd that typed most likely meant:
// one it begins (pus → push), else the nearest within two edits
// (pushh → push), else "".
func closestCommand(cmd *cobra.Command, typed string) string {
	best, bestDist := "", 3
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		name := c.Name()
		d := editDistance(strings.ToLower(typed), name)
		if strings.HasPrefix(name, strings.ToLower(typed)) {
			d = 0
		}
		if d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
