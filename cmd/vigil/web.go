package main

import (
	"embed"
	"io/fs"
)

// web holds the dashboard: plain HTML, CSS and JavaScript, no build step.
//
//go:embed web
var web embed.FS

func webFS() fs.FS {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree always has web/
	}
	return sub
}
