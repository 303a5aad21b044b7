package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// JournalDir is where a server keeps its journal, in its state directory.
const JournalDir = "audit"

// Journal files are journal-<first sequence number, 16 digits>.jsonl.
const (
	journalPrefix = "journal-"
	journalSuffix = ".jsonl"
	journalLock   = "journal.lock"
)

// Durability of journal records: when Record returns.
const (
	// SyncWrite returns once the record is written to the journal file:
	// a crash of the server process loses nothing; the file is flushed to
	// disk within SyncInterval, and a crash of the machine may lose the
	// records of that interval.
	SyncWrite = "write"
	// SyncFlush returns once the record is flushed to disk (fdatasync),
	// shared by the records written meanwhile (group commit).
	SyncFlush = "fsync"
)

// SyncInterval is how soon a record written with SyncWrite reaches the disk.
const SyncInterval = 100 * time.Millisecond

// JournalOptions tune a Journal.
type JournalOptions struct {
	// Sync is SyncWrite (default) or SyncFlush.
	Sync string
	// MaxFileBytes starts a new file once the current one is larger
	// (default 256 MiB).
	MaxFileBytes int64
	// Timeout bounds Record (default 3 s): a disk that does not answer
	// fails the request instead of holding it.
	Timeout time.Duration
	Now     func() time.Time
}

// Journal is a chain kept in append-only files by one server: events that
// change nothing in the database. A record is linked and copied into the
// file through a shared memory mapping of it, under the journal's lock: no
// system call, and once copied it is in the kernel's page cache, where a
// crash of the server process cannot lose it. The file is flushed to disk
// (fdatasync) within SyncInterval, or, with SyncFlush, before Record
// returns, one flush for every record copied meanwhile (group commit).
//
// A file is made as large as it may grow (MaxFileBytes and room for one
// more record) and its blocks are written with zeros ahead of the records,
// in the background, so that a full disk fails a record instead of the
// process, and so that flushing a record writes data only (blocks that were
// merely allocated would need their extents converted on every flush); the
// unused end reads as NUL bytes, which no record holds, and is cut off when
// the file is closed. A flush that fails, or the lock or a flush held longer than
// Timeout (a disk that does not answer), fails every record from then on:
// the journal fails closed, and never makes a request wait longer than
// Timeout.
type Journal struct {
	dir  string
	opts JournalOptions
	lock *os.File // the directory's lock file, held while open

	stalled chan struct{} // closed once the lock was held, or a flush ran, longer than Timeout
	closed  chan struct{}
	stopped sync.WaitGroup

	// The journal's lock (a channel, so that waiting for it can give up),
	// and since when it is held (UnixNano; 0 when free). It guards what
	// follows.
	sem       chan struct{}
	heldSince atomic.Int64
	f         *os.File
	mem       []byte // f, mapped
	off       int64  // where the next record goes: the end of the records
	head      Head
	lastCP    bool
	buf       []byte
	shut      bool

	// Reserving: reserveMu is held while zeros are written ahead of the
	// records, and while a file is opened or closed (after the journal's
	// lock when both are taken). reserved only grows while f is open;
	// records are copied below it, zeros written from it on.
	reserveMu sync.Mutex
	reserved  atomic.Int64
	reserveCh chan struct{} // a nudge for the reserving goroutine

	errMu  sync.Mutex
	failed error

	// Flushing: records waiting for it (SyncFlush), and a nudge.
	syncMu    sync.Mutex
	waiters   []chan error
	dirty     chan struct{}
	syncSince atomic.Int64 // when the running flush started, UnixNano; 0 when none
}

// reserveStep is how far ahead of the records a file's blocks are
// reserved.
const reserveStep = 4 << 20

// zeros are what reserve writes.
var zeros [256 << 10]byte

// OpenJournal opens (creating it if needed) the journal in dir, taking
// its lock: one server writes a journal. A last line cut short by a crash
// is removed, and the first record appended says so.
func OpenJournal(dir string, o JournalOptions) (*Journal, error) {
	if o.Sync == "" {
		o.Sync = SyncWrite
	}
	if o.Sync != SyncWrite && o.Sync != SyncFlush {
		return nil, fmt.Errorf("audit journal durability %q: want %q or %q", o.Sync, SyncWrite, SyncFlush)
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 256 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, journalLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("audit journal %s is in use by another server on this state directory (%v)", dir, err)
	}
	j := &Journal{dir: dir, opts: o, lock: lock, stalled: make(chan struct{}),
		closed: make(chan struct{}), dirty: make(chan struct{}, 1), sem: make(chan struct{}, 1), reserveCh: make(chan struct{}, 1)}
	cut, err := j.openTail()
	if err != nil {
		lock.Close()
		return nil, err
	}
	j.stopped.Add(3)
	go j.sync()
	go j.watch()
	go j.reserveAhead()
	details := map[string]any{"pid": os.Getpid(), "durability": o.Sync}
	if cut > 0 {
		details["removed_partial_bytes"] = cut
	}
	if err := j.Record(context.Background(), Event{Actor: ActorServer, Action: ActionJournalOpened, Outcome: "opened", Details: details}); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// JournalFiles lists the journal's files in chain order.
func JournalFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, journalPrefix) && strings.HasSuffix(n, journalSuffix) && !e.IsDir() {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out) // the first sequence number, zero-padded: name order is chain order
	return out, nil
}

// openTail finds the chain's head in the newest file and opens that file
// for appending. It returns how many bytes of a partial last line it cut.
func (j *Journal) openTail() (int64, error) {
	files, err := JournalFiles(j.dir)
	if err != nil {
		return 0, fmt.Errorf("audit journal: %w", err)
	}
	var cut int64
	for i := len(files) - 1; i >= 0; i-- {
		last, n, err := lastLine(files[i])
		if err != nil {
			return 0, fmt.Errorf("audit journal %s: %w", files[i], err)
		}
		if i == len(files)-1 {
			cut = n
		}
		if last == nil {
			continue // an empty file: the head is in the one before
		}
		_, r, err := ParseLine(last)
		if err == nil && r.ComputeHash() != r.Hash {
			err = errors.New("its hash does not match its contents")
		}
		if err != nil {
			return 0, fmt.Errorf("the last record of the audit journal %s is damaged (%v); check it with `kts audit verify --file %s`, then keep the journal's files elsewhere and move them all out of %s: the server starts a new journal", files[i], err, files[i], j.dir)
		}
		j.head, j.lastCP = Head{Seq: r.Seq, Hash: r.Hash}, r.IsCheckpoint()
		break
	}
	if len(files) > 0 {
		return cut, j.openFile(files[len(files)-1])
	}
	return 0, j.openFile(j.fileFor(j.head.Seq + 1))
}

func (j *Journal) fileFor(first int64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%s%016d%s", journalPrefix, first, journalSuffix))
}

// capacity is how large a journal file is made: it is replaced once its
// records pass MaxFileBytes, and one record is at most maxLine.
func (j *Journal) capacity() int64 { return j.opts.MaxFileBytes + maxLine }

// openFile opens path, whose records end at its size, and maps it.
func (j *Journal) openFile(path string) error {
	j.reserveMu.Lock()
	defer j.reserveMu.Unlock()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := fi.Size()
	if err := f.Truncate(j.capacity()); err != nil {
		f.Close()
		return fmt.Errorf("audit journal %s: %w", path, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(j.capacity()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		f.Truncate(size)
		f.Close()
		return fmt.Errorf("audit journal %s: map it: %w", path, err)
	}
	j.f, j.mem, j.off = f, mem, size
	j.reserved.Store(size)
	if err := j.reserve(size + reserveStep); err != nil {
		j.closeFileLocked()
		return err
	}
	return nil
}

// reserve writes zeros from the reserved end of the file up to end (with
// reserveMu held), so that copying records there cannot meet a full disk.
func (j *Journal) reserve(end int64) error {
	end = min(end, j.capacity())
	for from := j.reserved.Load(); from < end; from = j.reserved.Load() {
		n := min(end-from, int64(len(zeros)))
		if _, err := j.f.WriteAt(zeros[:n], from); err != nil {
			return fmt.Errorf("reserve space in %s: %w", j.f.Name(), err)
		}
		j.reserved.Store(from + n)
	}
	return nil
}

// reserveAhead reserves the next step of the file whenever the records
// come within half a step of the reserved end, so that requests seldom
// wait for it.
func (j *Journal) reserveAhead() {
	defer j.stopped.Done()
	for {
		select {
		case <-j.reserveCh:
		case <-j.closed:
			return
		}
		j.reserveMu.Lock()
		var err error
		if j.mem != nil {
			err = j.reserve(j.reserved.Load() + reserveStep)
		}
		j.reserveMu.Unlock()
		if err != nil {
			j.fail(err)
		}
	}
}

// closeFile unmaps the current file, cuts it to its records, flushes and
// closes it.
func (j *Journal) closeFile() error {
	j.reserveMu.Lock()
	defer j.reserveMu.Unlock()
	return j.closeFileLocked()
}

func (j *Journal) closeFileLocked() error {
	err := syscall.Munmap(j.mem)
	err = errors.Join(err, j.f.Truncate(j.off), fdatasync(j.f), j.f.Close())
	j.mem = nil
	return err
}

// lastLine returns the last complete line of path, after cutting off what
// follows it: the NUL bytes of a file that was not closed, and a line
// without its newline (a record cut short). It reports how many bytes of
// such a line it cut.
func lastLine(path string) ([]byte, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	read := func(off int64) ([]byte, error) {
		n := int64(chunk)
		if off < n {
			n = off
		}
		b := buf[:n]
		if _, err := f.ReadAt(b, off-n); err != nil && err != io.EOF {
			return nil, err
		}
		return b, nil
	}
	// The end of what was written: after the last byte that is not NUL.
	end := fi.Size()
	for end > 0 {
		b, err := read(end)
		if err != nil {
			return nil, 0, err
		}
		i := len(b) - 1
		for i >= 0 && b[i] == 0 {
			i--
		}
		if i >= 0 {
			end -= int64(len(b) - 1 - i)
			break
		}
		end -= int64(len(b))
	}
	// The tail from the line before the last newline on.
	var tail []byte
	for off := end; off > 0 && bytes.Count(tail, []byte("\n")) < 2 && len(tail) < maxLine+chunk; {
		b, err := read(off)
		if err != nil {
			return nil, 0, err
		}
		tail = append(bytes.Clone(b), tail...)
		off -= int64(len(b))
	}
	var cut int64
	if i := bytes.LastIndexByte(tail, '\n'); i != len(tail)-1 {
		cut = int64(len(tail) - i - 1)
		tail = tail[:i+1]
	}
	if end-cut != fi.Size() {
		if err := f.Truncate(end - cut); err != nil {
			return nil, 0, err
		}
		if err := f.Sync(); err != nil {
			return nil, 0, err
		}
	}
	tail = bytes.TrimSuffix(tail, []byte("\n"))
	if len(tail) == 0 {
		return nil, cut, nil
	}
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return tail, cut, nil
}

// acquire takes the journal's lock, unless it has been held for longer
// than Timeout (the journal has failed) or ctx ends first.
func (j *Journal) acquire(ctx context.Context) error {
	select {
	case j.sem <- struct{}{}:
	default:
		// It is held for a few microseconds: let its holder finish
		// before going to sleep.
		for range 4 {
			runtime.Gosched()
			select {
			case j.sem <- struct{}{}:
				j.heldSince.Store(time.Now().UnixNano())
				return nil
			default:
			}
		}
		select {
		case j.sem <- struct{}{}:
		case <-j.stalled:
			return j.err()
		case <-ctx.Done():
			return Unavailable(fmt.Errorf("waiting to write the record: %v", ctx.Err()))
		}
	}
	j.heldSince.Store(time.Now().UnixNano())
	return nil
}

func (j *Journal) release() {
	j.heldSince.Store(0)
	<-j.sem
}

// err is the journal's failure, or nil.
func (j *Journal) err() error {
	j.errMu.Lock()
	defer j.errMu.Unlock()
	return j.failed
}

// fail makes every later record fail with err (fail closed).
func (j *Journal) fail(err error) error {
	j.errMu.Lock()
	defer j.errMu.Unlock()
	if j.failed == nil {
		j.failed = Unavailable(err)
	}
	return j.failed
}

// Head returns the journal's head, and whether its last record is a
// checkpoint.
func (j *Journal) Head() (Head, bool) {
	if err := j.acquire(context.Background()); err != nil {
		return Head{}, false
	}
	defer j.release()
	return j.head, j.lastCP
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

var journalAppended = Appended.WithLabelValues(ChainJournal)

// Record appends e and returns once it is written (or flushed, with
// SyncFlush), or an error wrapping ErrUnavailable.
func (j *Journal) Record(ctx context.Context, e Event) error {
	err := j.record(ctx, e)
	if err != nil {
		Failed(ChainJournal, 1)
	}
	return err
}

func (j *Journal) record(ctx context.Context, e Event) error {
	if err := j.acquire(ctx); err != nil {
		return err
	}
	if err := j.err(); err != nil {
		j.release()
		return err
	}
	if j.shut {
		j.release()
		return Unavailable(errors.New("the journal is closed"))
	}
	r, err := linkOne(j.head, e, j.opts.Now())
	if err != nil {
		j.release()
		return Unavailable(err)
	}
	j.buf = AppendLine(j.buf[:0], ChainJournal, &r)
	if int64(len(j.buf)) > maxLine {
		j.release()
		return Unavailable(fmt.Errorf("audit event %s: its record is longer than %d bytes", e.Action, maxLine))
	}
	end := j.off + int64(len(j.buf))
	if reserved := j.reserved.Load(); end > reserved {
		// The reserving goroutine is behind: reserve here.
		j.reserveMu.Lock()
		err := j.reserve(end + reserveStep)
		j.reserveMu.Unlock()
		if err != nil {
			err = j.fail(err)
			j.release()
			return err
		}
	} else if end > reserved-reserveStep/2 {
		select {
		case j.reserveCh <- struct{}{}:
		default:
		}
	}
	copy(j.mem[j.off:], j.buf)
	j.off += int64(len(j.buf))
	j.head, j.lastCP = Head{Seq: r.Seq, Hash: r.Hash}, r.IsCheckpoint()
	journalAppended.Inc()
	if j.off >= j.opts.MaxFileBytes {
		if err := j.rotate(); err != nil {
			err = j.fail(err)
			j.release()
			return err
		}
	}
	var wait chan error
	if j.opts.Sync == SyncFlush {
		wait = make(chan error, 1)
		j.syncMu.Lock()
		j.waiters = append(j.waiters, wait)
		j.syncMu.Unlock()
	}
	j.release()
	select {
	case j.dirty <- struct{}{}:
	default:
	}
	if wait == nil {
		return nil
	}
	select {
	case err := <-wait:
		return err
	case <-j.stalled:
		return j.err()
	case <-ctx.Done():
		return Unavailable(fmt.Errorf("waiting for the record to be flushed: %v", ctx.Err()))
	}
}

// rotate starts a new file (the lock held). The old one is cut to its
// records, flushed and closed first: what it holds is on disk.
func (j *Journal) rotate() error {
	if err := j.closeFile(); err != nil {
		return fmt.Errorf("close %s: %w", j.f.Name(), err)
	}
	return j.openFile(j.fileFor(j.head.Seq + 1))
}

// sync flushes the current file when records were written: with
// SyncFlush as soon as any wait (one flush for all of them), with
// SyncWrite at most every SyncInterval.
func (j *Journal) sync() {
	defer j.stopped.Done()
	last := time.Now()
	for {
		select {
		case <-j.dirty:
		case <-j.closed:
			return
		}
		if j.opts.Sync == SyncWrite {
			if wait := SyncInterval - time.Since(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-j.closed:
					return
				}
			}
		}
		last = time.Now()
		j.syncMu.Lock()
		waiters := j.waiters
		j.waiters = nil
		j.syncMu.Unlock()
		if j.acquire(context.Background()) != nil {
			return // failed: the waiters have their answer
		}
		f := j.f
		j.release()
		j.syncSince.Store(time.Now().UnixNano())
		err := fdatasync(f)
		j.syncSince.Store(0)
		if errors.Is(err, os.ErrClosed) && j.acquire(context.Background()) == nil {
			if j.f != f {
				err = nil // replaced meanwhile: rotate flushed it before closing it
			}
			j.release()
		}
		if err != nil {
			err = j.fail(fmt.Errorf("flush %s: %w", f.Name(), err))
		}
		for _, w := range waiters {
			w <- err
		}
	}
}

// watch fails the journal when its lock has been held, or a flush has run,
// for longer than Timeout: the requests waiting are answered, not held.
func (j *Journal) watch() {
	defer j.stopped.Done()
	t := time.NewTicker(j.opts.Timeout / 10)
	defer t.Stop()
	for {
		select {
		case <-j.closed:
			return
		case now := <-t.C:
			for what, since := range map[string]int64{"a write": j.heldSince.Load(), "a flush": j.syncSince.Load()} {
				if since != 0 && now.Sub(time.Unix(0, since)) > j.opts.Timeout {
					j.fail(fmt.Errorf("%s of the journal has taken more than %v", what, j.opts.Timeout))
					close(j.stalled)
					return
				}
			}
		}
	}
}

// Close stops the journal after flushing what was written; its file is
// cut to its records.
func (j *Journal) Close() error {
	held := j.acquire(context.Background()) == nil
	if j.shut {
		if held {
			j.release()
		}
		return nil
	}
	j.shut = true
	close(j.closed)
	if held {
		j.release()
	}
	j.stopped.Wait()
	var err error
	if j.acquire(context.Background()) == nil {
		err = j.closeFile()
		j.release()
	} else {
		err = j.err()
	}
	j.syncMu.Lock()
	for _, w := range j.waiters {
		w <- err
	}
	j.waiters = nil
	j.syncMu.Unlock()
	j.lock.Close()
	return err
}

// fdatasync flushes f's data to disk; a closed f is os.ErrClosed.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// ReadJournal calls fn with every record of the journal in dir, in chain
// order, across its files. A last line still being written is skipped.
func ReadJournal(dir string, fn func(Record) error) error {
	files, err := JournalFiles(dir)
	if err != nil {
		return err
	}
	for _, path := range files {
		if err := readFile(path, fn); err != nil {
			return err
		}
	}
	return nil
}

func readFile(path string, fn func(Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := NewScanner(f)
	sc.CompleteLines = true
	for sc.Scan() {
		if err := fn(sc.Record); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// JournalFileSeq is the first sequence number a journal file's name gives.
func JournalFileSeq(path string) (int64, bool) {
	n := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), journalPrefix), journalSuffix)
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil
}
