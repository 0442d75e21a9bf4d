package api

import (
	"embed"
	"io/fs"
)

// web holds the dashboard: plain HTML, CSS and JavaScript, no build step.
// The embed directive needs a package-level variable; nothing writes to it.
//
//go:embed web
var web embed.FS

// webFS returns the dashboard's files with web/ as their root.
func webFS() fs.FS {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	return sub
}
