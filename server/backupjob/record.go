package backupjob

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ProtonMail/go-crypto/openpgp"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/localdb"
)

// record records that a backup starts, and returns what records how it
// ended. When the start cannot be recorded, the backup does not start.
func record(ctx context.Context, opts backup.Options, recipient *openpgp.Entity) (func(backup.Result, error) error, error) {
	log, err := localdb.OpenRecorder(ctx, opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("the backup did not start: %w", err)
	}
	object := "backup:" + opts.Host
	details := map[string]any{"output": opts.Output, "encryption": encryption(recipient)}
	if err := log.Record(ctx, audit.ActionBackup, object, audit.OutcomeStarted, details); err != nil {
		log.Close()
		return nil, fmt.Errorf("the backup did not start: %w", err)
	}
	return func(res backup.Result, err error) error {
		defer log.Close()
		outcome, more := localdb.Outcome(err)
		if err == nil {
			more = map[string]any{"archive": filepath.Base(res.Path), "bytes": res.Size}
		}
		ctx := context.WithoutCancel(ctx)
		if rerr := log.Record(ctx, audit.ActionBackup, object, outcome, localdb.JoinDetails(details, more)); rerr != nil {
			return fmt.Errorf("recording its end in the audit log failed: %w", rerr)
		}
		return nil
	}, nil
}

// encryption says in the audit record whom an archive is encrypted to:
// the recipient's fingerprint (its key ID when it has none), or cleartext.
func encryption(recipient *openpgp.Entity) string {
	if recipient == nil {
		return "cleartext"
	}
	if fp := recipient.PrimaryKey.Fingerprint; len(fp) > 0 {
		return fmt.Sprintf("to %X", fp)
	}
	return "to " + recipient.PrimaryKey.KeyIdString()
}
