package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/test/harness"
)

var when = time.Date(2016, 2, 10, 11, 14, 37, 0, time.UTC)

func TestNamesFollowKtbackup(t *testing.T) {
	for _, tc := range []struct {
		kind      backup.Kind
		encrypted bool
		want      string
	}{
		{backup.KindServer, false, "kts_bak_kts01_example_com_2016-02-10_11-14-37.tar"},
		{backup.KindServer, true, "kts_bak_kts01_example_com_2016-02-10_11-14-37.tar.gpg"},
		{backup.KindClient, true, "kts_client_bak_kts01_example_com_2016-02-10_11-14-37.tar.gpg"},
	} {
		if got := backup.Name(tc.kind, "kts01.example.com", when.In(time.FixedZone("X", 3600)), tc.encrypted); got != tc.want {
			t.Errorf("Name(%s, encrypted %v) = %s, want %s", tc.kind, tc.encrypted, got, tc.want)
		}
	}
}

func TestRollKeepsTheNewestN(t *testing.T) {
	dir := t.TempDir()
	var names []string
	for i := range 12 {
		n := backup.Name(backup.KindServer, "kts01.example.com", when.Add(time.Duration(i)*time.Hour), i%2 == 0)
		names = append(names, n)
		write(t, filepath.Join(dir, n), "x")
	}
	others := []string{
		backup.Name(backup.KindServer, "kts02.example.com", when, true),       // another host
		backup.Name(backup.KindClient, "kts01.example.com", when, true),       // a client archive
		".kts_bak_kts01_example_com_2016-02-10_11-14-37.tar.gpg.partial-1234", // unfinished
		"kts_bak_kts01_example_com_notatime.tar", "notes.txt",
	}
	for _, n := range others {
		write(t, filepath.Join(dir, n), "x")
	}
	if _, err := backup.Roll(dir, backup.KindServer, "kts01.example.com", 0); err == nil {
		t.Fatal("--roll=0 accepted")
	}
	// --roll=10 with 12 backups: the two oldest go.
	removed, err := backup.Roll(dir, backup.KindServer, "kts01.example.com", 10)
	if err != nil || len(removed) != 2 || filepath.Base(removed[0]) != names[1] || filepath.Base(removed[1]) != names[0] {
		t.Fatalf("Roll(10) removed %v, %v; want the two oldest", removed, err)
	}
	// --roll=1: only the newest stays.
	if _, err := backup.Roll(dir, backup.KindServer, "kts01.example.com", 1); err != nil {
		t.Fatal(err)
	}
	want := append([]string{names[11]}, others...)
	if got := ls(t, dir); !sameSet(got, want) {
		t.Fatalf("after --roll=1 the directory holds %v, want %v", got, want)
	}
}

// stateDir makes a small state directory like kts init's.
func stateDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".keytrustee")
	os.MkdirAll(filepath.Join(dir, ".ssl"), 0o700)
	os.MkdirAll(filepath.Join(dir, "db", "base"), 0o700)
	write(t, filepath.Join(dir, "keytrustee.conf"), `{"HOSTNAME": "kts01.example.com"}`)
	write(t, filepath.Join(dir, "server-key.asc"), "-----BEGIN PGP PRIVATE KEY BLOCK-----")
	write(t, filepath.Join(dir, ".ssl", "ssl-cert-keytrustee.pem"), "cert")
	write(t, filepath.Join(dir, "db", "base", "1"), "table data")
	return dir
}

func makeArchive(t *testing.T, dir, out string) backup.Result {
	t.Helper()
	res, err := backup.Make(context.Background(), backup.Options{
		Kind: backup.KindServer, StateDir: dir, Output: out, Host: "kts01.example.com", Now: when,
		Skip: func(rel string) bool { return rel == "db" },
		Dump: func(_ context.Context, w io.Writer) error {
			_, err := io.WriteString(w, "CREATE TABLE deposits (x int);\n")
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestArchiveListsStateLikeKtbackupAndRoundTrips(t *testing.T) {
	dir, out := stateDir(t), t.TempDir()
	res := makeArchive(t, dir, out)
	if filepath.Base(res.Path) != "kts_bak_kts01_example_com_2016-02-10_11-14-37.tar" {
		t.Fatalf("archive %s", res.Path)
	}
	if fi, err := os.Stat(res.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive mode %v, %v; want 0600", fi.Mode(), err)
	}
	root := strings.TrimPrefix(dir, "/")
	parent := filepath.Dir(root)
	want := []string{
		parent + "/kts_bak_kts01_example_com_2016-02-10_11-14-37.manifest.json",
		root + "/", root + "/.ssl/", root + "/.ssl/ssl-cert-keytrustee.pem", root + "/keytrustee.conf", root + "/server-key.asc",
		parent + "/kts_bak_kts01_example_com_2016-02-10_11-14-37.sql",
	}
	if got := tarNames(t, res.Path); !slices.Equal(got, want) {
		t.Fatalf("archive holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if leftovers := ls(t, out); len(leftovers) != 1 {
		t.Fatalf("output directory holds %v; want only the archive", leftovers)
	}

	f, _ := os.Open(res.Path)
	defer f.Close()
	target := filepath.Join(t.TempDir(), "restored")
	s, err := backup.Unpack(f, nil, target)
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "kts01.example.com" || !s.Created.Equal(when) || s.StateDir != dir {
		t.Fatalf("manifest %+v", s.Manifest)
	}
	if dump, _ := os.ReadFile(s.File(s.Dump)); string(dump) != "CREATE TABLE deposits (x int);\n" {
		t.Fatalf("staged dump %q", dump)
	}
	outside, err := s.Place(target, func(string) bool { return false })
	if err != nil || len(outside) != 0 {
		t.Fatalf("Place: %v %v", outside, err)
	}
	s.Remove()
	for _, rel := range []string{"keytrustee.conf", "server-key.asc", ".ssl/ssl-cert-keytrustee.pem"} {
		a, _ := os.ReadFile(filepath.Join(dir, rel))
		b, err := os.ReadFile(filepath.Join(target, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s restored as %q (%v), want %q", rel, b, err, a)
		}
	}
	if got := ls(t, target); !sameSet(got, []string{".ssl", "keytrustee.conf", "server-key.asc"}) {
		t.Fatalf("restored state directory holds %v", got)
	}
}

func TestUnpackRefusesDamagedAndForeignArchives(t *testing.T) {
	dir, out := stateDir(t), t.TempDir()
	good, err := os.ReadFile(makeArchive(t, dir, out).Path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x20
		return b
	}
	sql := bytes.Index(good, []byte("CREATE TABLE"))
	var foreign bytes.Buffer
	tw := tar.NewWriter(&foreign)
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Mode: 0o644, Size: 4, Typeflag: tar.TypeReg})
	tw.Write([]byte("root"))
	tw.Close()
	withExtra := extraEntry(t, good)

	for name, data := range map[string][]byte{
		"empty":                 nil,
		"not a tar":             []byte("hello, this is not an archive"),
		"another tar":           foreign.Bytes(),
		"truncated in the dump": good[:sql+5],
		"truncated at the end":  good[:len(good)-1024-512],
		"a changed dump byte":   flip(sql + 3),
		"a changed manifest":    flip(bytes.Index(good, []byte(`"host"`)) + 2),
		"an entry not listed":   withExtra,
	} {
		target := filepath.Join(t.TempDir(), "state")
		_, err := backup.Unpack(bytes.NewReader(data), nil, target)
		if !errors.Is(err, backup.ErrInvalid) {
			t.Errorf("%s: Unpack = %v, want ErrInvalid", name, err)
		}
		if _, statErr := os.Stat(target); !os.IsNotExist(statErr) {
			t.Errorf("%s: Unpack left %s behind", name, target)
		}
	}

	// The verdict of the layer below counts too, and leaves an existing
	// state directory as it was.
	target := t.TempDir()
	write(t, filepath.Join(target, "keytrustee.conf"), "mine")
	tampered := errors.New("decryption: message was modified")
	if _, err := backup.Unpack(bytes.NewReader(good), func() error { return tampered }, target); !errors.Is(err, tampered) {
		t.Fatalf("Unpack with a failed integrity check = %v", err)
	}
	if got := ls(t, target); !slices.Equal(got, []string{"keytrustee.conf"}) {
		t.Fatalf("a refused archive changed the state directory: %v", got)
	}
}

func TestAFailedBackupLeavesNoArchive(t *testing.T) {
	dir, out := stateDir(t), t.TempDir()
	_, err := backup.Make(context.Background(), backup.Options{
		Kind: backup.KindServer, StateDir: dir, Output: out, Host: "kts01", Now: when,
		Dump: func(_ context.Context, w io.Writer) error {
			io.WriteString(w, "CREATE TABLE")
			return errors.New("pg_dump: connection lost")
		},
	})
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("Make = %v", err)
	}
	if got := ls(t, out); len(got) != 0 {
		t.Fatalf("output directory holds %v after a failed backup", got)
	}
	if got := ls(t, dir); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, ".backup-") }) {
		t.Fatalf("the dump's temporary file was left in the state directory: %v", got)
	}
	if _, err := backup.Make(context.Background(), backup.Options{Kind: backup.KindServer, StateDir: dir, Output: filepath.Join(out, "missing"),
		Host: "kts01", Now: when, Dump: func(context.Context, io.Writer) error { return nil }}); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("Make into a missing directory = %v", err)
	}
}

// extraEntry appends an entry the manifest does not list to an archive.
func extraEntry(t *testing.T, archive []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(hdr)
		io.Copy(tw, tr)
	}
	tw.WriteHeader(&tar.Header{Name: "etc/cron.d/evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	return buf.Bytes()
}

func FuzzExtract(f *testing.F) {
	dir, out := stateDir(f), f.TempDir()
	res, err := backup.Make(context.Background(), backup.Options{
		Kind: backup.KindServer, StateDir: dir, Output: out, Host: "h", Now: when,
		Dump: func(_ context.Context, w io.Writer) error { _, err := io.WriteString(w, "SELECT 1;\n"); return err },
	})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(res.Path)
	f.Add(good)
	f.Add(good[:700])
	f.Add([]byte{})
	stage := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp(stage, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		s, err := backup.Extract(bytes.NewReader(data), dir)
		if err != nil {
			return
		}
		// Whatever is accepted names only entries inside the state
		// directory or absolute paths, and stages files by number.
		for i, e := range s.Entries {
			if strings.HasPrefix(e.Name, "/") || strings.Contains("/"+e.Name+"/", "/../") {
				t.Fatalf("accepted entry name %q", e.Name)
			}
			if _, err := os.Stat(s.File(i)); !e.IsDir() && err != nil {
				t.Fatalf("file entry %d not staged: %v", i, err)
			}
		}
	})
}

func write(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ls(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func tarNames(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

func TestLongBackupsShowProgress(t *testing.T) {
	dir, out := stateDir(t), t.TempDir()
	var progress harness.Buffer
	_, err := backup.Make(context.Background(), backup.Options{
		Kind: backup.KindServer, StateDir: dir, Output: out, Host: "kts01", Now: when, Progress: &progress,
		Dump: func(_ context.Context, w io.Writer) error {
			w.Write(make([]byte, 3<<20))
			time.Sleep(1200 * time.Millisecond)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := progress.String(); !strings.Contains(got, "\rdumping the database: 3.0 MiB") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("progress shown: %q", got)
	}
}
