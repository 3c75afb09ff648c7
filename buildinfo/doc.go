// Package buildinfo says which cas this is: the version every manifest
// records and `cas version` prints. It is a leaf: it imports nothing of
// cas, and anything may import it.
package buildinfo
