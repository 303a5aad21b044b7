// Package backupjob is kts backup (ktbackup.sh) as a whole: what it
// archives of a server's or a client's state directory, the key it
// encrypts to, the audit records around a server backup, and the restore
// drill that may follow it. The archive format is server/backup's; the
// drill is server/restore's.
package backupjob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/gnupg"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
)

// Options are what kts backup is asked to do.
type Options struct {
	// StateDir is the server's state directory; Client, when set, a
	// client's state directory to back up instead.
	StateDir, Client string
	// DBPort, when not 0, is the database port instead of the
	// configuration's.
	DBPort int
	// Recipient names the OpenPGP key to encrypt to, looked up in Keyring
	// (a public key file) or GnuPG's keyring; Cleartext writes an
	// unencrypted archive instead.
	Recipient, Keyring string
	Cleartext          bool
	// Output is the directory for the archive ("": the one holding the
	// state directory).
	Output string
	// Roll, when above zero, keeps only the newest Roll archives of this
	// host; RollSet says it was given at all.
	Roll    int
	RollSet bool
	// Verify runs a restore drill on the new archive, decrypting it with
	// VerifyKey (or GnuPG's keyring); a failed drill fails the backup.
	Verify    bool
	VerifyKey string
	// ResultFile, when set, is given the archive's file name (and the
	// drill's outcome).
	ResultFile string
	// Verbose and Progress are backup.Options'.
	Verbose  func(format string, args ...any)
	Progress io.Writer
	// Now is when the backup is taken (zero: the time it starts).
	Now time.Time
}

// Result is what a backup made.
type Result struct {
	backup.Result
	Kind     backup.Kind
	StateDir string
	// Recipient is the key the archive is encrypted to, nil for cleartext.
	Recipient *openpgp.Entity
	// Drilled is the restore drill's verdict, when there was one.
	Drilled string
}

// Run makes the backup o describes, and the restore drill after it when
// asked. A server backup is recorded in the audit log before it starts (so
// that the archive holds its own record) and when it ends.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.RollSet && o.Roll < 1 {
		return res, fmt.Errorf("--roll=%d: keep at least the newest backup (--roll=1)", o.Roll)
	}
	encrypt, recipient, err := findRecipient(ctx, o)
	if err != nil {
		return res, err
	}
	if o.Verify && o.Client != "" {
		return res, errors.New("--verify restores a server's database; a client backup holds none")
	}
	opts := backup.Options{Encrypt: encrypt, Roll: o.Roll, Now: o.Now, Verbose: o.Verbose, Progress: o.Progress}
	if o.Verify {
		opts.Roll = 0 // older archives go only once the new one restored
	}
	if o.Client != "" {
		err = clientOptions(&opts, o)
	} else {
		err = serverOptions(&opts, o)
	}
	if err != nil {
		return res, err
	}
	if opts.Output == "" {
		opts.Output = filepath.Dir(opts.StateDir)
	}
	res.Kind, res.StateDir, res.Recipient = opts.Kind, opts.StateDir, recipient
	var finish func(res backup.Result, err error) error
	if opts.Kind == backup.KindServer {
		if finish, err = record(ctx, opts, recipient); err != nil {
			return res, err
		}
	}
	res.Result, err = backup.Make(ctx, opts)
	if finish != nil {
		if ferr := finish(res.Result, err); ferr != nil && err == nil {
			return res, fmt.Errorf("the backup %s is complete and kept, but %w", res.Path, ferr)
		}
	}
	if err != nil {
		return res, err
	}
	result := filepath.Base(res.Path)
	if o.Verify {
		d, err := restore.Drill(ctx, res.Path, restore.DrillOptions{Decryption: restore.Decryption{KeyFile: o.VerifyKey}, RunAs: pg.DefaultRunAs})
		if err != nil {
			msg := "restore drill failed: " + err.Error()
			if o.ResultFile != "" {
				os.WriteFile(o.ResultFile, []byte(result+": "+msg), 0o644)
			}
			return res, fmt.Errorf("the backup %s was written, but its %s; it is not a good backup (it is kept for inspection, and no older backup was rolled away)", res.Path, msg)
		}
		res.Drilled = "restore drill: ok, " + d.Summary()
		result += "\n" + res.Drilled
		if o.Roll > 0 {
			res.Removed, err = backup.Roll(opts.Output, opts.Kind, opts.Host, o.Roll)
			if err != nil {
				return res, fmt.Errorf("the backup %s is complete and passed its restore drill, but removing older ones failed: %w", res.Path, err)
			}
		}
	}
	if o.ResultFile != "" {
		if err := os.WriteFile(o.ResultFile, []byte(result), 0o644); err != nil {
			return res, fmt.Errorf("the backup %s is complete and kept, but writing its name to --result-file failed: %w", res.Path, err)
		}
	}
	return res, nil
}

// Lines says what a backup made, one line each, as kts backup prints it.
func (r Result) Lines() []string {
	what := "state directory " + r.StateDir
	if r.Kind == backup.KindServer {
		what += fmt.Sprintf(" and database (%d bytes of SQL)", r.DumpSize)
	}
	out := []string{"backed up " + what}
	if r.Recipient != nil {
		out = append(out, "encrypted to "+gnupg.Describe(r.Recipient))
	} else {
		out = append(out, "WARNING: the archive is not encrypted and holds every key of the server; keep it safe")
	}
	for _, p := range r.Removed {
		out = append(out, "removed older backup "+p)
	}
	out = append(out, fmt.Sprintf("wrote %s (%d bytes)", r.Path, r.Size))
	if r.Drilled != "" {
		out = append(out, r.Drilled)
	}
	return out
}

// recipientChoice decides, from the flags alone, whether the archive is
// encrypted (the recipient then to be looked up) or cleartext.
func recipientChoice(cleartext bool, recipient string) (lookup bool, err error) {
	switch {
	case cleartext && recipient != "":
		return false, errors.New("--cleartext and --gpg-recipient contradict each other; choose one")
	case cleartext:
		return false, nil
	case recipient == "":
		return false, errors.New("no --gpg-recipient: backups hold every key, so they are encrypted to a key administrator's " +
			"OpenPGP key (import it with `gpg --import FILE` and name it by name, e-mail or fingerprint); " +
			"--cleartext writes an unencrypted archive instead, not for production")
	}
	return true, nil
}

// findRecipient finds the key to encrypt to, or settles on cleartext.
func findRecipient(ctx context.Context, o Options) (func(io.Writer, string) (io.WriteCloser, error), *openpgp.Entity, error) {
	lookup, err := recipientChoice(o.Cleartext, o.Recipient)
	if !lookup {
		return nil, nil, err
	}
	keys, err := gnupg.PublicKeys(ctx, o.Keyring)
	if err != nil {
		return nil, nil, err
	}
	to, err := gnupg.FindRecipient(keys, o.Recipient, o.Now)
	if err != nil {
		return nil, nil, err
	}
	return func(w io.Writer, name string) (io.WriteCloser, error) { return gnupg.Encrypt(w, to, name) }, to, nil
}
