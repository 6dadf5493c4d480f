package train

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar on w, redrawn in place with '\r'. A nil
// *progress or a nil writer draws nothing.
type progress struct {
	w     io.Writer
	shown int // last permille drawn, -1 when nothing is on the line
	label string
	open  bool
	width int       // length of the text on the line, to blank a longer one
	last  time.Time // when set last drew
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		return nil
	}
	return &progress{w: w, shown: -1}
}

const barWidth = 30

// set draws label [#####-----] pct suffix when the fraction done/total has
// moved by at least 1% and 200 ms have passed since the last drawing, when
// the label changed, or when done == total.
func (p *progress) set(label string, done, total int, suffix string) {
	if p == nil {
		return
	}
	pm := done * 1000 / max(total, 1)
	now := time.Now()
	if label == p.label && (pm-p.shown < 10 || now.Sub(p.last) < 200*time.Millisecond) && done != total {
		return
	}
	p.label, p.shown, p.last = label, pm, now
	fill := done * barWidth / max(total, 1)
	p.draw(fmt.Sprintf("%s [%s%s] %3d%%  %s", label,
		strings.Repeat("#", fill), strings.Repeat("-", barWidth-fill), pm/10, suffix))
}

// draw replaces the current line with text, padding with blanks over what
// a longer previous text left (no terminal escapes, so a log file stays
// readable).
func (p *progress) draw(text string) {
	pad := max(p.width-len(text), 0)
	fmt.Fprintf(p.w, "\r%s%s", text, strings.Repeat(" ", pad))
	p.width, p.open = len(text), true
}

// line redraws the current line with text.
func (p *progress) line(text string) {
	if p == nil {
		return
	}
	p.draw(text)
}

// done ends the current line.
func (p *progress) done() {
	if p == nil || !p.open {
		return
	}
	fmt.Fprintln(p.w)
	p.open, p.label, p.shown, p.width = false, "", -1, 0
}
