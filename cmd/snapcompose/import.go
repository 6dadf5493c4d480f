package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
	// Named rusage, as in getrusage(2): cli.go declares a usage constant.
	rusage "github.com/snapcompose/snapcompose/internal/usage"
)

const (
	defaultUsageHost = "bitbrains-rnd"
	// listedRowProblems is how many malformed rows the summary quotes.
	listedRowProblems = 10
)

const importUsageSynopsis = "snapcompose import usage --format bitbrains [--host NAME] [--workers N] DIR_OR_FILE..."

// importCmd runs `import usage`, the one kind of import there is.
func (m *Main) importCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "usage" {
		return domain.Errorf(domain.EINVALID, "import: want `%s`", importUsageSynopsis)
	}
	return m.importUsage(ctx, args[1:])
}

// traceFile is a file to import and the service its samples belong to.
type traceFile struct {
	path    string
	service string
}

// fileResult is what importing one file came to.
type fileResult struct {
	started  bool
	inserted int64
	skipped  int64
	stats    rusage.Stats
	// fileErr says why the file, or its end, could not be read; the rows
	// before a truncation are imported all the same.
	fileErr error
	// storeErr is a failure of the database, which stops the whole import.
	storeErr error
}

// importUsage loads usage traces into the database: each file one series of
// host --host, named after the file (1.csv.gz is service "1"). Files are
// imported a few at a time; each holds at most one batch in memory.
//
// Exit codes: 0 when every row was imported, 1 when malformed rows were
// skipped (the rest imported) or the import was interrupted, 2 for invalid
// arguments or files that are not Bitbrains CSVs (after importing the
// good files).
func (m *Main) importUsage(ctx context.Context, args []string) error {
	fs := m.flags("import usage")
	format := fs.String("format", "", "trace `format` of the files: bitbrains (required)")
	host := fs.String("host", defaultUsageHost, "`name` of the host the imported series belong to")
	workers := fs.Int("workers", 2, "`number` of files imported at once")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nEach file (or .csv/.csv.gz file of a directory) becomes one service, named after the file.\n\n", importUsageSynopsis)
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch *format {
	case "bitbrains":
	case "":
		return domain.Errorf(domain.EINVALID, "import usage: --format is required: want bitbrains")
	default:
		return domain.Errorf(domain.EINVALID, "--format: unknown format %q: want bitbrains", *format)
	}
	if strings.TrimSpace(*host) == "" {
		return domain.Errorf(domain.EINVALID, "--host: must not be empty")
	}
	if *workers < 1 || *workers > 64 {
		return domain.Errorf(domain.EINVALID, "--workers: want 1 to 64, got %d", *workers)
	}
	if len(paths) == 0 {
		return domain.Errorf(domain.EINVALID, "import usage: name at least one file or directory to import: %s", importUsageSynopsis)
	}
	if m.getenv("DATABASE_URL") == "" {
		return domain.Errorf(domain.EINVALID, "import usage: DATABASE_URL is not set: set it to the snapcompose database (`snapcompose db start` starts a local one and prints its URL)")
	}
	files, fileProblems := listTraceFiles(paths)
	if len(files) == 0 {
		return domain.Invalid("import usage: nothing to import", fileProblems)
	}
	st, err := m.openStore(ctx, "import usage")
	if err != nil {
		return err
	}
	defer st.Close()

	start := time.Now()
	results := m.importTraceFiles(ctx, st, *host, files, *workers)
	elapsed := time.Since(start)
	m.printImportSummary(files, results, *host, elapsed)
	return importOutcome(ctx, files, results, fileProblems)
}

// importTraceFiles imports files with workers goroutines, reporting progress
// on stderr, and returns each file's result. A database failure stops the
// files not yet started.
func (m *Main) importTraceFiles(ctx context.Context, st *store.Store, host string, files []traceFile, workers int) []fileResult {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prog := newProgress(m.Stderr, m.isTerminal(m.Stderr), len(files))
	results := make([]fileResult, len(files))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(files)) {
		wg.Go(func() {
			for i := range jobs {
				results[i] = importTraceFile(ctx, st, host, files[i], prog.addRows)
				prog.fileDone(files[i], results[i])
				if results[i].storeErr != nil {
					cancel()
				}
			}
		})
	}
feed:
	for i := range files {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	prog.finish()
	return results
}

// importTraceFile streams one file into its series.
func importTraceFile(ctx context.Context, st *store.Store, host string, f traceFile, onRows func(int64)) fileResult {
	res := fileResult{started: true}
	fh, err := os.Open(f.path)
	if err != nil {
		res.fileErr = domain.Errorf(domain.EINVALID, "%s", pathError(err))
		return res
	}
	defer fh.Close()
	r, err := rusage.NewBitbrainsReader(f.path, fh)
	if err != nil {
		res.fileErr = err
		return res
	}
	series := rusage.Series{Origin: rusage.OriginBitbrains, Host: host, Service: f.service,
		IntervalSeconds: int(rusage.BitbrainsInterval / time.Second)}
	imported, err := st.ImportUsage(ctx, series, r.All(), store.UsageImportOptions{
		OnBatch: func(b store.UsageImportResult) { onRows(b.Inserted + b.Skipped) },
	})
	res.inserted, res.skipped, res.stats = imported.Inserted, imported.Skipped, r.Stats()
	if err != nil {
		res.storeErr = fmt.Errorf("%s: %w", f.path, err)
		return res
	}
	res.fileErr = r.Err()
	return res
}

// importOutcome turns the results into the command's error, and so its
// exit code: a database failure or an interruption first, then files that
// could not be read (2), then malformed rows (1).
func importOutcome(ctx context.Context, files []traceFile, results []fileResult, fileProblems []domain.Problem) error {
	for _, r := range results {
		// Once one file fails in the database, the others stop with
		// context.Canceled: report the failure itself.
		if r.storeErr != nil && !errors.Is(r.storeErr, context.Canceled) {
			return r.storeErr
		}
	}
	var malformed, done int
	var rowProblems []domain.Problem
	for _, r := range results {
		if r.started && r.storeErr == nil {
			done++
		}
		if r.fileErr != nil {
			fileProblems = append(fileProblems, domain.Problem{Message: r.fileErr.Error()})
		}
		malformed += r.stats.Malformed
		for _, p := range r.stats.Problems {
			if len(rowProblems) < listedRowProblems {
				rowProblems = append(rowProblems, domain.Problem{Where: p.File + ":" + strconv.Itoa(p.Line), Message: p.Message})
			}
		}
	}
	if more := malformed - len(rowProblems); more > 0 {
		rowProblems = append(rowProblems, domain.Problem{Message: fmt.Sprintf("... and %d more malformed %s", more, plural(more, "row", "rows"))})
	}
	if ctx.Err() != nil {
		return &domain.Error{Code: domain.EPARTIAL, Message: fmt.Sprintf(
			"import usage: interrupted after %d of %d files: what was imported is kept (whole batches only); run the same command again to import the rest",
			done, len(files))}
	}
	switch {
	case len(fileProblems) > 0:
		msg := fmt.Sprintf("import usage: %d %s could not be imported (every other file was)",
			len(fileProblems), plural(len(fileProblems), "file or directory", "files or directories"))
		if malformed > 0 {
			msg += fmt.Sprintf("; %d malformed %s skipped", malformed, plural(malformed, "row was", "rows were"))
		}
		return domain.Invalid(msg, append(fileProblems, rowProblems...))
	case malformed > 0:
		return &domain.Error{Code: domain.EPARTIAL, Problems: rowProblems, Message: fmt.Sprintf(
			"import usage: %d malformed %s skipped; every other row was imported", malformed, plural(malformed, "row was", "rows were"))}
	}
	return nil
}

// printImportSummary writes what the import did to stdout.
func (m *Main) printImportSummary(files []traceFile, results []fileResult, host string, elapsed time.Duration) {
	var done int
	var inserted, skipped int64
	var malformed, repeated, clamped int
	for _, r := range results {
		if r.started && r.storeErr == nil && (r.fileErr == nil || r.stats.Rows > 0) {
			done++
		}
		inserted += r.inserted
		skipped += r.skipped
		malformed += r.stats.Malformed
		repeated += r.stats.Repeated
		clamped += r.stats.Clamped
	}
	of := ""
	if done != len(files) {
		of = fmt.Sprintf(" of %d", len(files))
	}
	fmt.Fprintf(m.Stdout, "imported %d%s %s into host %q in %s (%s rows/s):\n",
		done, of, plural(len(files), "file", "files"), host, elapsed.Round(time.Millisecond), thousands(int64(rate(inserted+skipped, elapsed))))
	w := len(thousands(max(inserted, skipped, int64(malformed))))
	line := func(n int64, one, many string) {
		fmt.Fprintf(m.Stdout, "  %*s %s\n", w, thousands(n), plural(int(min(n, 2)), one, many))
	}
	line(inserted, "row inserted", "rows inserted")
	line(skipped, "row skipped: already stored", "rows skipped: already stored")
	line(int64(malformed), "malformed row skipped", "malformed rows skipped")
	if repeated > 0 {
		line(int64(repeated), "row skipped: repeating an earlier row of its file", "rows skipped: repeating an earlier row of their file")
	}
	if clamped > 0 {
		line(int64(clamped), "CPU reading above 100% clamped to the provisioned capacity", "CPU readings above 100% clamped to the provisioned capacity")
	}
}

// listTraceFiles expands directories into their .csv and .csv.gz files, in
// natural order (2 before 10), and names each file's service. It reports
// paths it cannot read, empty directories, and two files that would write
// the same series.
func listTraceFiles(paths []string) ([]traceFile, []domain.Problem) {
	var files []traceFile
	var problems []domain.Problem
	byService := map[string]string{}
	add := func(path string) {
		service := rusage.TraceName(path)
		if other, ok := byService[service]; ok {
			if other != path {
				problems = append(problems, domain.Problem{Where: path, Message: fmt.Sprintf(
					"would write the same series as %s (service %q): import it on its own with another --host", other, service)})
			}
			return
		}
		byService[service] = path
		files = append(files, traceFile{path: path, service: service})
	}
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			problems = append(problems, domain.Problem{Message: pathError(err)})
			continue
		}
		if !info.IsDir() {
			add(path)
			continue
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			problems = append(problems, domain.Problem{Message: pathError(err)})
			continue
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".csv.gz") || strings.HasSuffix(e.Name(), ".csv")) {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			problems = append(problems, domain.Problem{Where: path, Message: "no .csv or .csv.gz files in this directory"})
			continue
		}
		slices.SortFunc(names, rusage.CompareTraceNames)
		for _, name := range names {
			add(filepath.Join(path, name))
		}
	}
	return files, problems
}

// parseInterspersed parses fs's flags wherever they stand among the
// positional arguments (`import usage DIR --host h`) and returns the
// positional ones; after "--" every argument is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, domain.Errorf(domain.EINVALID, "%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// isTerminal reports whether w is an interactive terminal, where progress
// redraws one line; anywhere else (a file, a pipe, a CI log) it is written
// as plain lines without control characters.
func (m *Main) isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || m.getenv("TERM") == "dumb" {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0 && f.Name() != os.DevNull
}

// progress reports an import's advance on stderr: a bar redrawn in place on
// a terminal, a line per file elsewhere.
type progress struct {
	w     io.Writer
	tty   bool
	total int
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	mu    sync.Mutex
	files int
	rows  int64
	width int // of the last line drawn, to blank it out
}

func newProgress(w io.Writer, tty bool, total int) *progress {
	p := &progress{w: w, tty: tty, total: total, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if !tty {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

func (p *progress) addRows(n int64) {
	p.mu.Lock()
	p.rows += n
	p.mu.Unlock()
}

func (p *progress) fileDone(f traceFile, r fileResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files++
	if p.tty {
		return
	}
	// Errors name the file, which starts the line already.
	short := func(err error) string { return strings.TrimPrefix(err.Error(), f.path+": ") }
	var what string
	switch {
	case r.storeErr != nil:
		what = "failed: " + short(r.storeErr)
	case r.fileErr != nil && r.stats.Rows == 0:
		what = "not imported: " + short(r.fileErr)
	default:
		what = fmt.Sprintf("%s rows (%s new)", thousands(r.inserted+r.skipped), thousands(r.inserted))
		if r.stats.Malformed > 0 {
			what += fmt.Sprintf(", %s malformed", thousands(int64(r.stats.Malformed)))
		}
		if r.fileErr != nil {
			what += ", then: " + short(r.fileErr)
		}
	}
	fmt.Fprintf(p.w, "[%*d/%d] %s: %s; %s rows so far, %s rows/s\n", len(strconv.Itoa(p.total)), p.files, p.total,
		f.path, what, thousands(p.rows), thousands(int64(rate(p.rows, time.Since(p.start)))))
}

// draw redraws the bar; p.mu is held.
func (p *progress) draw() {
	const barWidth = 30
	filled := barWidth * p.files / max(p.total, 1)
	line := fmt.Sprintf("importing [%s%s] %d/%d files, %s rows, %s rows/s",
		strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), p.files, p.total,
		thousands(p.rows), thousands(int64(rate(p.rows, time.Since(p.start)))))
	pad := max(p.width-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.width = len(line)
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	close(p.stop)
	<-p.done
	if p.tty {
		p.mu.Lock()
		p.draw()
		fmt.Fprintln(p.w)
		p.mu.Unlock()
	}
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// thousands formats n with comma separators: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
