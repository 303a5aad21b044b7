package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestDSNGivesSeparateDatabases(t *testing.T) {
	ctx := context.Background()
	dsn1, dsn2 := DSN(t), DSN(t)
	if dsn1 == dsn2 {
		t.Fatalf("DSN returned %q twice", dsn1)
	}
	c1, c2 := connect(t, dsn1), connect(t, dsn2)
	var db1, db2 string
	if err := c1.QueryRow(ctx, "select current_database()").Scan(&db1); err != nil {
		t.Fatal(err)
	}
	if err := c2.QueryRow(ctx, "select current_database()").Scan(&db2); err != nil {
		t.Fatal(err)
	}
	if db1 == db2 {
		t.Fatalf("both DSNs reach database %q", db1)
	}
	if _, err := c1.Exec(ctx, "create table only_in_first (id int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c2.QueryRow(ctx, "select count(*) from pg_tables where tablename = 'only_in_first'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a table created through one DSN is visible through the other")
	}
}

func TestDSNDroppedAfterTest(t *testing.T) {
	ctx := context.Background()
	var name string
	var open *pgx.Conn // left open by the test: must not block the drop
	t.Run("user", func(t *testing.T) {
		dsn := DSN(t)
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.Database
		if open, err = pgx.Connect(ctx, dsn); err != nil {
			t.Fatal(err)
		}
	})
	if open != nil {
		defer open.Close(ctx)
	}
	admin := connect(t, Instance(t).ConnString("postgres", sharedPassword))
	var exists bool
	if err := admin.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %q outlived its test", name)
	}
}

func TestInstanceIsShared(t *testing.T) {
	a, b := Instance(t), Instance(t)
	if a != b {
		t.Fatal("Instance returned two instances")
	}
	st, err := a.Status(context.Background())
	if err != nil || !st.Running {
		t.Fatalf("shared instance status = %+v, %v; want running", st, err)
	}
}
