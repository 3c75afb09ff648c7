// Package words writes counts the way cas's messages read: "1 file", "27
// files", "1 directory", "1,024 chunks". It must not import anything of
// this module.
package words

import (
	"strings"

	"github.com/dustin/go-humanize"
)

// Count is n, with thousands separated, and the noun, singular or plural.
func Count[N int | int64](n N, noun string) string {
	return humanize.Comma(int64(n)) + " " + Plural(int64(n), noun)
}

// Plural is noun for one, else its plural: nouns ending in a consonant
// and y take -ies, the others -s.
func Plural(n int64, noun string) string {
	if n == 1 {
		return noun
	}
	if len(noun) >= 2 && strings.HasSuffix(noun, "y") && !strings.ContainsAny(noun[len(noun)-2:len(noun)-1], "aeiou") {
		return noun[:len(noun)-1] + "ies"
	}
	return noun + "s"
}
