package restore

import (
	"fmt"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
)

// checkKind refuses an archive of the other kind: a client archive
// restores only with --client, a server archive only without.
func checkKind(kind backup.Kind, client bool, archive string) error {
	switch {
	case client && kind != backup.KindClient:
		return fmt.Errorf("%s is a server backup; restore it without --client; nothing was changed", archive)
	case !client && kind != backup.KindServer:
		return fmt.Errorf("%s is a client backup; restore it with --client DIR; nothing was changed", archive)
	}
	return nil
}

// Found is what a server restore finds in its target state directory
// before it changes anything.
type Found struct {
	Dir string
	// HasConfig is true when the directory holds a keytrustee.conf; Role
	// is then its role.
	HasConfig bool
	Role      string
	// HasCluster is true when the database cluster at DataDir exists.
	HasCluster bool
	DataDir    string
}

// decide says whether a server archive is restored onto a fresh host (no
// keytrustee.conf) or over the existing server, and refuses what a restore
// cannot do there: a passive's state directory (its database follows the
// active's), a cluster without a configuration, a configuration without
// its cluster.
func decide(f Found) (fresh bool, err error) {
	fresh = !f.HasConfig
	switch {
	case !fresh && f.Role == config.RolePassive:
		return fresh, fmt.Errorf("%s is a passive's state directory, whose database follows the active's: restore on the active "+
			"(the passive follows; when the restored keys differ from the passive's, set it up again with `kts init --from-active`)", f.Dir)
	case fresh && f.HasCluster:
		return fresh, fmt.Errorf("%s holds a database cluster (%s) but no %s: restore onto a fresh host needs a state directory without either "+
			"(move it away, or restore into another directory)", f.Dir, f.DataDir, config.FileName)
	case !fresh && !f.HasCluster:
		return fresh, fmt.Errorf("%s has a %s but no database cluster (%s): create it with `kts db init --confdir %s` and restore again, "+
			"or restore into a new state directory", f.Dir, config.FileName, f.DataDir, f.Dir)
	}
	return fresh, nil
}
