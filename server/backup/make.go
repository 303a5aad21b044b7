package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe a backup to make.
type Options struct {
	Kind     Kind
	StateDir string
	// Skip leaves out paths of the state directory (slash-separated,
	// relative to it), such as the database's data directory.
	Skip func(rel string) bool
	// Extra are absolute paths of files outside the state directory that
	// the state needs, such as TLS files configured elsewhere.
	Extra []string
	// Dump writes the database as SQL; required for server archives.
	Dump func(ctx context.Context, w io.Writer) error
	// Encrypt wraps the archive file for its recipient; nil writes a
	// cleartext archive.
	Encrypt func(w io.Writer, fileName string) (io.WriteCloser, error)
	// Output is the directory the archive is written to.
	Output string
	// Host names the archive; Fingerprint and Role go in its manifest.
	Host, Fingerprint, Role string
	// Roll, when above zero, keeps only the newest Roll archives of Host
	// in Output once the new one is complete.
	Roll int
	Now  time.Time
	// Verbose, when set, is told each step.
	Verbose func(format string, args ...any)
	// Progress, when set (a terminal), shows how far a long backup got.
	Progress io.Writer
}

// Result describes a backup made.
type Result struct {
	Path     string
	Size     int64 // bytes of the archive file
	DumpSize int64 // bytes of SQL
	Entries  int   // directories and files besides the manifest
	Removed  []string
}

// Make writes an archive as o says: the state directory (and the database
// dump) go to a temporary file in o.Output that becomes the archive only
// when complete; then older archives are rolled away.
func Make(ctx context.Context, o Options) (Result, error) {
	if o.Kind == KindServer && o.Dump == nil {
		return Result{}, errors.New("a server backup needs its database")
	}
	if o.Roll < 0 {
		return Result{}, fmt.Errorf("--roll=%d: keep at least the newest backup (--roll=1)", o.Roll)
	}
	say := o.Verbose
	if say == nil {
		say = func(string, ...any) {}
	}
	name := Name(o.Kind, o.Host, o.Now, o.Encrypt != nil)
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".gpg"), TarExt)
	a, err := NewArchive(o.Kind, o.Host, o.Now, o.StateDir, base)
	if err != nil {
		return Result{}, err
	}
	a.Fingerprint, a.Role = o.Fingerprint, o.Role
	skip := func(rel string) bool { return isWorkFile(rel) || (o.Skip != nil && o.Skip(rel)) }
	if err := a.AddStateDir(skip); err != nil {
		return Result{}, fmt.Errorf("reading the state directory: %w", err)
	}
	for _, p := range o.Extra {
		if err := a.AddFile(p); err != nil {
			return Result{}, fmt.Errorf("reading %s, which the configuration names: %w", p, err)
		}
	}
	say("state directory %s: %d entries", a.StateDir, len(a.Entries))

	m := newMeter(o.Progress)
	defer m.stop()
	var res Result
	if o.Kind == KindServer {
		dump, err := os.CreateTemp(filepath.FromSlash(a.StateDir), dumpPrefix+"*.sql")
		if err != nil {
			return res, err
		}
		defer os.Remove(dump.Name())
		say("dumping the database to a temporary file in the state directory")
		hw := &HashingWriter{W: m.counting("dumping the database", dump)}
		err = o.Dump(ctx, hw)
		if err = errors.Join(err, dump.Close()); err != nil {
			return res, err
		}
		size, sum := hw.Sum()
		a.AddDump(dump.Name(), size, sum)
		res.DumpSize = size
		say("database dump: %d bytes of SQL", size)
	}

	out, err := CreateOutput(o.Output, name)
	if err != nil {
		return res, err
	}
	if err := write(a, out, name, o.Encrypt, m); err != nil {
		out.Abort()
		return res, err
	}
	fi, err := out.Stat()
	if err != nil {
		out.Abort()
		return res, err
	}
	if res.Path, err = out.Commit(); err != nil {
		return res, err
	}
	res.Size, res.Entries = fi.Size(), len(a.Entries)
	m.stop()
	if o.Roll > 0 {
		res.Removed, err = Roll(o.Output, o.Kind, o.Host, o.Roll)
		for _, p := range res.Removed {
			say("rolled away %s", p)
		}
		if err != nil {
			return res, fmt.Errorf("the backup %s is complete, but removing older ones failed: %w", res.Path, err)
		}
	}
	return res, nil
}

// write writes the archive to out, encrypted when encrypt is set.
func write(a *Archive, out io.Writer, name string, encrypt func(io.Writer, string) (io.WriteCloser, error), m *meter) error {
	w := m.counting("writing the archive", out)
	if encrypt == nil {
		_, err := a.WriteTo(w)
		return err
	}
	enc, err := encrypt(w, strings.TrimSuffix(name, ".gpg"))
	if err != nil {
		return err
	}
	if _, err := a.WriteTo(enc); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// Work files a backup or restore keeps in the state directory while it
// runs; never archived.
const (
	dumpPrefix  = ".backup-"
	stagePrefix = ".restore-"
)

func isWorkFile(rel string) bool {
	return !strings.Contains(rel, "/") && (strings.HasPrefix(rel, dumpPrefix) || strings.HasPrefix(rel, stagePrefix))
}

// meter shows on a terminal how many bytes the current step has written,
// once a second.
type meter struct {
	w     io.Writer
	n     atomic.Int64
	mu    sync.Mutex
	step  string
	done  chan struct{}
	once  sync.Once
	shown bool
}

func newMeter(w io.Writer) *meter {
	m := &meter{w: w, done: make(chan struct{})}
	if w != nil {
		go m.run()
	}
	return m
}

func (m *meter) run() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.mu.Lock()
			select {
			case <-m.done:
				m.mu.Unlock()
				return
			default:
			}
			fmt.Fprintf(m.w, "\r%s: %.1f MiB ", m.step, float64(m.n.Load())/(1<<20))
			m.shown = true
			m.mu.Unlock()
		}
	}
}

// counting returns w counted under the name of a step.
func (m *meter) counting(step string, w io.Writer) io.Writer {
	m.mu.Lock()
	m.step = step
	m.mu.Unlock()
	m.n.Store(0)
	return writerFunc(func(p []byte) (int, error) {
		n, err := w.Write(p)
		m.n.Add(int64(n))
		return n, err
	})
}

func (m *meter) stop() {
	m.once.Do(func() {
		close(m.done)
		m.mu.Lock()
		if m.shown {
			fmt.Fprintln(m.w)
		}
		m.mu.Unlock()
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
