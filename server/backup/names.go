// Package backup holds the archive format of Trustee's backups: a tar of a
// state directory and a plain-SQL dump of its database, as ktbackup.sh
// makes them, preceded by a manifest that lets a restore check every byte
// before it changes anything. It also names archives and rolls old ones
// away.
package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Kind is what an archive holds.
type Kind string

// Kinds of archives.
const (
	// KindServer: a server's state directory and database dump.
	KindServer Kind = "server"
	// KindClient: a client's state directory.
	KindClient Kind = "client"
)

// prefix returns the file name prefix of kind's archives.
func (k Kind) prefix() string {
	if k == KindClient {
		return "kts_client_bak_"
	}
	return "kts_bak_"
}

// timeLayout is the archive name's time stamp, in UTC.
const timeLayout = "2006-01-02_15-04-05"

// Extensions of archive files.
const (
	TarExt       = ".tar"
	EncryptedExt = ".tar.gpg"
)

// Name returns the file name of kind's archive of host taken at t:
// kts_bak_<host with _ for .>_<YYYY-MM-DD_HH-MM-SS>.tar, with .gpg
// appended when encrypted. Client archives start kts_client_bak_.
func Name(kind Kind, host string, t time.Time, encrypted bool) string {
	ext := TarExt
	if encrypted {
		ext = EncryptedExt
	}
	return hostPrefix(kind, host) + t.UTC().Format(timeLayout) + ext
}

// hostPrefix is the part of an archive name before its time stamp.
func hostPrefix(kind Kind, host string) string {
	return kind.prefix() + strings.NewReplacer(".", "_", "/", "_", string(filepath.Separator), "_").Replace(host) + "_"
}

// stamp returns the time stamp of an archive name of kind and host, and
// whether name is one.
func stamp(kind Kind, host, name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, hostPrefix(kind, host))
	if !ok {
		return time.Time{}, false
	}
	switch {
	case strings.HasSuffix(rest, EncryptedExt):
		rest = strings.TrimSuffix(rest, EncryptedExt)
	case strings.HasSuffix(rest, TarExt):
		rest = strings.TrimSuffix(rest, TarExt)
	default:
		return time.Time{}, false
	}
	t, err := time.Parse(timeLayout, rest)
	return t, err == nil
}

// Roll deletes kind's archives of host in dir but the keep newest, as
// ktbackup.sh --roll=keep does after making a new one: --roll=1 leaves only
// the newest. Other files, other hosts' archives and unfinished archives
// (which have other names) are never touched. It returns the paths removed.
func Roll(dir string, kind Kind, host string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("--roll=%d: keep at least the newest backup (--roll=1)", keep)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type archive struct {
		name string
		at   time.Time
	}
	var found []archive
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if t, ok := stamp(kind, host, e.Name()); ok {
			found = append(found, archive{e.Name(), t})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if !found[i].at.Equal(found[j].at) {
			return found[i].at.After(found[j].at)
		}
		return found[i].name > found[j].name
	})
	var removed []string
	var errs []error
	for _, a := range found[min(keep, len(found)):] {
		p := filepath.Join(dir, a.name)
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}
