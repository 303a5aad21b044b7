package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/store"
)

// standbyPoll is how often the active looks again for its passive while a
// schema change waits for it; standbyLogEvery how often it says so.
const (
	standbyPoll     = 500 * time.Millisecond
	standbyLogEvery = 10 * time.Second
)

// waitForStandbyToMigrate holds the active's start, for at most wait,
// while its database needs schema changes and the synchronous standby
// those commits wait for is not connected: a commit would wait for it
// without end, and the server would neither serve nor say why. It logs
// what it waits for, and gives up with an error naming what is missing.
func waitForStandbyToMigrate(ctx context.Context, db *store.Store, standby string, wait time.Duration, log *slog.Logger) error {
	pending, err := db.MigrationsPending(ctx)
	if err != nil || !pending {
		return err
	}
	deadline := time.Now().Add(wait)
	var logged time.Time
	for {
		rep, err := db.StandbyReplication(ctx, standby)
		if err != nil {
			return err
		}
		if !rep.Paired || contract.InSync(rep.Attached, rep.SyncState) {
			return nil
		}
		missing := fmt.Errorf("the database needs its schema written before the server can serve, and every commit of this active "+
			"waits for its passive's database (STANDBY_NAME %q), which is not connected: start the passive's PostgreSQL "+
			"(kts db start on the passive), or, to run this server alone, set STANDBY_NAME to \"\" in keytrustee.conf "+
			"and restart its database (kts db stop, then kts db start)", standby)
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w (waited %v, --db-wait)", missing, wait)
		}
		if time.Since(logged) >= standbyLogEvery {
			log.Warn("waiting for the passive's database", "standby", standby, "reason", missing.Error(),
				"gives_up_in", time.Until(deadline).Round(time.Second).String())
			logged = time.Now()
		}
		if err := sleep(ctx, min(standbyPoll, time.Until(deadline))); err != nil {
			return fmt.Errorf("stopped waiting for the passive's database: %w", err)
		}
	}
}
