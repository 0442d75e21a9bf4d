// Package vigil holds what belongs to the repository as a whole: the
// shipped configuration, embedded so that the file in the repository and
// the binary's built-in default cannot drift apart.
package vigil

import _ "embed"

// DefaultConfig is the shipped config.toml, used when no file is given.
//
//go:embed config.toml
var DefaultConfig []byte
