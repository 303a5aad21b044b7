package pg_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/pg/pgtest"
)

// testDB is a fresh database on the shared server.
type testDB struct {
	name, password string
	conn           *pgx.Conn
}

func newTestDB(t *testing.T) testDB {
	t.Helper()
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	pw, _ := u.User.Password()
	return testDB{name: strings.TrimPrefix(u.Path, "/"), password: pw, conn: conn}
}

func (d testDB) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := d.conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (d testDB) rows(t *testing.T) []string {
	t.Helper()
	rows, err := d.conn.Query(context.Background(), `SELECT name || ':' || encode(data, 'hex') FROM deposits ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDumpLoadsIntoAnEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	inst := pgtest.Instance(t)
	src, dst := newTestDB(t), newTestDB(t)
	src.exec(t, `CREATE TABLE deposits (name text PRIMARY KEY, data bytea NOT NULL)`)
	src.exec(t, `INSERT INTO deposits SELECT 'd' || i, decode(md5(i::text) || md5((i*7)::text), 'hex') FROM generate_series(1, 500) i`)
	src.exec(t, `INSERT INTO deposits VALUES ($1, $2)`, "odd 'name'\n\\with\ttabs", []byte{0, 1, 255, '\n'})

	var dump bytes.Buffer
	if err := inst.Dump(ctx, src.password, src.name, &dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump.String(), "OWNER TO") || strings.Contains(dump.String(), "GRANT ") {
		t.Error("the dump names owners or grants privileges; it must load as any role")
	}
	if err := inst.Load(ctx, dst.password, dst.name, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	want, got := src.rows(t), dst.rows(t)
	if len(got) != 501 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("loaded %d rows, want the 501 dumped, identical", len(got))
	}
}

func TestLoadIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	inst := pgtest.Instance(t)
	db := newTestDB(t)
	sql := "CREATE TABLE deposits (name text PRIMARY KEY, data bytea NOT NULL);\n" +
		"INSERT INTO deposits VALUES ('a', '\\x00');\n" +
		"INSERT INTO deposits VALUES ('a', '\\x01');\n" // duplicate: fails
	err := inst.Load(ctx, db.password, db.name, strings.NewReader(sql))
	if err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("Load of failing SQL = %v, want the duplicate key error", err)
	}
	var tables int
	if err := db.conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'deposits'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("after a failed load %d tables exist (%v); want none", tables, err)
	}
}

func TestDumpErrorsSayWhatFailedWithoutThePassword(t *testing.T) {
	ctx := context.Background()
	inst := pgtest.Instance(t)
	db := newTestDB(t)
	err := inst.Dump(ctx, "wrong-password-1234", db.name, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("Dump with a wrong password = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-password-1234") {
		t.Fatal("the error shows the password")
	}
	if err := inst.Dump(ctx, db.password, "no_such_database", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no_such_database") {
		t.Fatalf("Dump of a missing database = %v", err)
	}
}

func TestReplaceSwapsInTheLoadedDatabaseOrChangesNothing(t *testing.T) {
	ctx := context.Background()
	inst := pgtest.Instance(t)
	db := newTestDB(t)
	db.exec(t, `CREATE TABLE deposits (name text PRIMARY KEY, data bytea NOT NULL)`)
	db.exec(t, `INSERT INTO deposits VALUES ('old', '\x00')`)
	db.conn.Close(ctx)
	closeAll(t, db) // the backend ends a moment after the client closes
	reopen := func() testDB {
		conn, err := pgx.Connect(ctx, inst.ConnString(db.name, db.password))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		return testDB{name: db.name, password: db.password, conn: conn}
	}
	restored := "CREATE TABLE deposits (name text PRIMARY KEY, data bytea NOT NULL);\n" +
		"INSERT INTO deposits VALUES ('new', '\\x01');\n"
	tooBad := errors.New("check refused")

	for _, tc := range []struct {
		name  string
		sql   string
		check func(context.Context, *pgx.Conn) error
		want  string
	}{
		{"failing SQL", restored + "INSERT INTO deposits VALUES ('new', '\\x02');\n", nil, "duplicate key"},
		{"refused by the check", restored, func(context.Context, *pgx.Conn) error { return tooBad }, "check refused"},
	} {
		err := inst.Replace(ctx, db.password, db.name, strings.NewReader(tc.sql), tc.check)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: Replace = %v, want %q", tc.name, err, tc.want)
		}
		if got := reopen().rows(t); strings.Join(got, ",") != "old:00" {
			t.Fatalf("%s changed the database: %v", tc.name, got)
		}
		closeAll(t, db)
	}

	// In use (by a server, say): refused, nothing changed.
	reopen()
	err := inst.Replace(ctx, db.password, db.name, strings.NewReader(restored), nil)
	if !errors.Is(err, pg.ErrInUse) || !strings.Contains(err.Error(), "stop the kts server") {
		t.Fatalf("Replace of a database in use = %v", err)
	}
	closeAll(t, db)

	var counted int
	err = inst.Replace(ctx, db.password, db.name, strings.NewReader(restored), func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM deposits`).Scan(&counted)
	})
	if err != nil || counted != 1 {
		t.Fatalf("Replace = %v (check counted %d rows)", err, counted)
	}
	if got := reopen().rows(t); strings.Join(got, ",") != "new:01" {
		t.Fatalf("after Replace the database holds %v", got)
	}
	var leftovers int
	if err := reopen().conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, db.name+"_%").Scan(&leftovers); err != nil || leftovers != 0 {
		t.Fatalf("%d staging or old databases left (%v)", leftovers, err)
	}
}

// closeAll ends every session on db's database but the caller's.
func closeAll(t *testing.T, db testDB) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.Instance(t).ConnString("postgres", db.password))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db.name); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		var n int
		conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db.name).Scan(&n)
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("sessions did not end")
}
