package cli

import (
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cas-ml/cas/cas"
	"github.com/cas-ml/cas/manifest"
	"github.com/cas-ml/cas/remote"
)

// What each argument of a command completes to, by its position; the
// last kind repeats for commands taking several.
type argKind int

const (
	argNone      argKind = iota // no completion (a new name)
	argRef                      // refs, runs and pins
	argRefOrPath                // refs and pins, or files
	argPath                     // files
	argRemote                   // remote names
	argRefName                  // ref names only (refs rm, refs log)
	argPin                      // pin names
)

// argCompletion says, by command path, what its arguments complete to.
var argCompletion = map[string][]argKind{
	"cas ls":                 {argRef},
	"cas cat":                {argRef},
	"cas show":               {argRef},
	"cas restore":            {argRef, argPath},
	"cas pull":               {argRef},
	"cas verify":             {argRef},
	"cas diff":               {argRef, argRefOrPath},
	"cas inspect":            {argRefOrPath},
	"cas reproduce":          {argRef},
	"cas report":             {argRef},
	"cas env diff":           {argRef},
	"cas stats":              {argRef},
	"cas pin":                {argNone, argRef},
	"cas unpin":              {argPin},
	"cas refs rm":            {argRefName},
	"cas refs log":           {argRefName},
	"cas remote remove":      {argRemote},
	"cas remote set-default": {argRemote},
	"cas remote rename":      {argRemote, argNone},
	"cas remote upgrade":     {argRemote},
}

// remoteFlags are the flags that take a remote's name.
var remoteFlags = []string{"to", "from", "remote"}

// setupCompletion gives the commands below root their completion of
// refs, runs, pins and remotes (cobra's ValidArgsFunction), and the
// completion command its scripts.
func setupCompletion(root *cobra.Command, f *Factory) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if kinds, ok := argCompletion[c.CommandPath()]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				k := kinds[min(len(args), len(kinds)-1)]
				return completeArg(cmd, f, k, toComplete)
			}
		}
		for _, name := range remoteFlags {
			if c.LocalFlags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
					return completeArg(cmd, f, argRemote, toComplete)
				})
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	root.AddCommand(newCmdCompletion(root))
}

// completeArg lists what an argument of kind k may be, beginning with
// toComplete. It reads names only (cas.Names): no index, no network.
func completeArg(cmd *cobra.Command, f *Factory, k argKind, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	files := cobra.ShellCompDirectiveDefault
	none := cobra.ShellCompDirectiveNoFileComp
	switch k {
	case argNone:
		return nil, none
	case argPath:
		return nil, files
	}
	dir, err := f.StoreDir()
	if err != nil {
		if k == argRefOrPath {
			return nil, files
		}
		return nil, none
	}
	var names []string
	switch k {
	case argRemote:
		rs, _ := remote.LoadConfigs(filepath.Join(dir, remote.ConfigFile))
		for _, r := range rs {
			names = append(names, r.Name)
		}
	default:
		refs, pins, err := cas.Names(cmd.Context(), dir)
		if err != nil {
			return nil, none
		}
		names = refs
		if k == argPin {
			names = pins
		} else if k != argRefName {
			for _, p := range pins {
				if !slices.Contains(refs, p) {
					names = append(names, p) // a bare pin name works where no ref has it
				}
			}
			for _, r := range refs {
				if run, ok := strings.CutPrefix(r, manifest.RefPrefix); ok && !slices.Contains(refs, run) {
					names = append(names, run) // so does a bare run name
				}
			}
		}
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if k == argRefOrPath {
		return out, files
	}
	return out, none
}

// bashWithoutPackage defines, when the bash-completion package has not,
// the one function of it that cobra's bash script needs: the words of
// the line up to the cursor, split at blanks only (REF:path stays one
// word; cobra's script handles the colon itself).
const bashWithoutPackage = `# Without the bash-completion package: a stand-in for its
# _get_comp_words_by_ref, the one function of it this script needs.
if ! declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
_get_comp_words_by_ref() {
    local line="${COMP_LINE:0:COMP_POINT}" ws
    read -r -a ws <<< "$line"
    if [[ -z "$line" || "$line" =~ [[:space:]]$ ]]; then ws+=(""); fi
    words=("${ws[@]}")
    cword=$(( ${#ws[@]} - 1 ))
    cur="${ws[cword]}"
    prev="${ws[cword-1]}"
}
fi

`

func newCmdCompletion(root *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell's completion script: commands, flags, refs, runs, pins, remotes",
		Long: `Print the completion script for bash, zsh or fish. It completes commands
and flags, and the names of refs, runs, pins and remotes where a command
takes one (cas ls tr<TAB> gives train, not a file). The bash script works
with or without the bash-completion package; 'source <(cas completion bash)'
loads it into the shell at hand.`,
		Example: `  cas completion bash > ~/.cas-completion.bash   # then: source ~/.cas-completion.bash (in ~/.bashrc to keep it)
  cas completion zsh > "${fpath[1]}/_cas"        # zsh, for new shells
  cas completion fish > ~/.config/fish/completions/cas.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []cobra.Completion{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeCompletion(root, cmd.OutOrStdout(), args[0])
		},
	}
	cmd.GroupID = "admin"
	return cmd
}

func writeCompletion(root *cobra.Command, w io.Writer, shell string) error {
	switch shell {
	case "bash":
		if _, err := io.WriteString(w, bashWithoutPackage); err != nil {
			return err
		}
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	}
	return usageError("completion %q: want bash, zsh or fish", shell)
}
