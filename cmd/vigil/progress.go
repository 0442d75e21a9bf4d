package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-dns/vigil/blocklists"
)

// progressBar draws "[#####.....] 3/10 list source status" on a terminal,
// redrawn in place; elsewhere it prints one line per source, which a log
// file can keep.
type progressBar struct {
	w    io.Writer
	tty  bool
	used bool
}

// newProgressBar returns a bar drawing on w.
func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty}
}

// update shows that st finished, done of total; it is a blocklists.Progress.
func (p *progressBar) update(done, total int, st blocklists.SourceStatus) {
	p.used = true
	if !p.tty {
		fmt.Fprintf(p.w, "%d/%d %s %s: %s\n", done, total, st.List, st.Source, st.Status)
		return
	}
	const width = 30
	filled := width * done / max(total, 1)
	label := st.List + " " + st.Status
	if len(label) > 40 {
		label = label[:40]
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %-40s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, label)
}

// finish ends the bar's line, so what follows starts on its own.
func (p *progressBar) finish() {
	if p.tty && p.used {
		fmt.Fprintln(p.w)
	}
}
