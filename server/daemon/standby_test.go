package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/pg/pgtest"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/test/harness"
)

// TestActiveWithoutItsPassiveDoesNotWaitSilently: an active whose new
// database needs its schema, while the synchronous standby every commit
// waits for is not connected (a restore, a pair whose passive was never
// set up), says what it waits for and gives up within --db-wait, naming
// STANDBY_NAME and what to do, instead of waiting for the commit for ever.
// Once the schema is written, there is nothing to wait for.
func TestActiveWithoutItsPassiveDoesNotWaitSilently(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst := pgtest.NewInstance(t)
	inst.Standby = "kts_passive"
	const password = "standby-away"
	if err := inst.Init(ctx, password); err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inst.CreateDatabase(ctx, password, "keytrustee"); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, inst.ConnString("keytrustee", password), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs harness.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	begin := time.Now()
	err = waitForStandbyToMigrate(ctx, db, "kts_passive", 1500*time.Millisecond, log)
	took := time.Since(begin)
	if err == nil || !strings.Contains(err.Error(), `STANDBY_NAME "kts_passive"`) || !strings.Contains(err.Error(), "kts db start on the passive") ||
		!strings.Contains(err.Error(), "1.5s") {
		t.Fatalf("waitForStandbyToMigrate without the passive = %v", err)
	}
	if took < 1500*time.Millisecond || took > 10*time.Second {
		t.Errorf("a wait of 1.5s took %v", took)
	}
	if !strings.Contains(logs.String(), "waiting for the passive's database") {
		t.Errorf("the wait was not logged:\n%s", logs.String())
	}

	// A single server (no STANDBY_NAME in its PostgreSQL) never waits; its
	// schema written, an active whose passive is away has nothing to wait for.
	inst.Standby = ""
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = store.Open(ctx, inst.ConnString("keytrustee", password), 4); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := waitForStandbyToMigrate(ctx, db, "", time.Minute, log); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	inst.Standby = "kts_passive"
	inst.Stop(ctx)
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = store.Open(ctx, inst.ConnString("keytrustee", password), 4); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	begin = time.Now()
	if err := waitForStandbyToMigrate(ctx, db, "kts_passive", time.Minute, log); err != nil || time.Since(begin) > 5*time.Second {
		t.Fatalf("with its schema written: %v after %v", err, time.Since(begin))
	}
}
