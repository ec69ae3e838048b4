package bench

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows which run is going and how many are left: a bar on a
// terminal, a line per run elsewhere (a log keeps no carriage returns);
// a nil writer shows nothing.
type progress struct {
	bar   *progressbar.ProgressBar
	plain io.Writer
	n     int
	total int
	start time.Time
}

func newProgress(w io.Writer, total int) *progress {
	if w == nil {
		return &progress{}
	}
	if f, ok := w.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{plain: w, total: total, start: time.Now()}
	}
	return &progress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("bench"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progress) describe(s string) {
	if p.bar != nil {
		p.bar.Describe(s)
	}
	if p.plain != nil {
		fmt.Fprintf(p.plain, "bench [%d/%d %4.0fs] %s\n", p.n+1, p.total, time.Since(p.start).Seconds(), s)
	}
}

func (p *progress) add() {
	p.n++
	if p.bar != nil {
		_ = p.bar.Add(1)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
