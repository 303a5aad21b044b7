package member

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/pg"
)

// The decisions of setup: pure functions of what was observed.

// checkMember refuses a --member that is no role.
func checkMember(member string) error {
	if member != config.RoleActive && member != config.RolePassive {
		return fmt.Errorf("--member %q: use active or passive", member)
	}
	return nil
}

// checkConfigRole refuses a configuration file (configFile, whose ROLE is
// confRole) of the other member.
func checkConfigRole(member, configFile, confRole string) error {
	if confRole != member {
		return fmt.Errorf("%s is the configuration of the %s (ROLE %q), but --member is %s: give this member's own file",
			configFile, confRole, confRole, member)
	}
	return nil
}

// recordedActive is the member the active marker names (MemberA while the
// marker does not exist); ok is false without a marker or when it cannot
// be read.
func recordedActive(active marker) (member string, ok bool) {
	switch {
	case active.Path == "" || active.Err != nil:
		return "", false
	case !active.Read:
		return contract.MemberA, true
	}
	return active.Value, true
}

// roleAgreed reports whether role is the role of the member called name
// as the active marker records it: a change of role the operator made.
// Without a name or a readable marker, nothing is agreed.
func roleAgreed(active marker, name, role string) bool {
	recorded, ok := recordedActive(active)
	if !ok || name == "" {
		return false
	}
	return (recorded == name) == (role == config.RoleActive)
}

// checkInstalled decides whether the state directory dir, whose installed
// configuration has the role installed (loadErr: loading it failed), may
// be set up for role: a directory of the other role only when the marker
// agreed to the change.
func checkInstalled(dir, installed string, loadErr error, role string, agreed bool) error {
	switch {
	case loadErr == nil && installed != role && !agreed:
		return fmt.Errorf("%s holds the state of the %s, and this is the %s: give each member its own state directory",
			dir, installed, role)
	case loadErr != nil && !errors.Is(loadErr, fs.ErrNotExist):
		return fmt.Errorf("the installed configuration: %w", loadErr)
	}
	return nil
}

// needsKEK reports whether setup's first check needs the HSM to hold the
// active's deposit key: a passive's first copy waits for the active, whose
// setup creates the key, so only a passive with a cluster needs it now.
func needsKEK(role string, initialized bool) bool {
	return role == config.RolePassive && initialized
}

// decidePromote decides whether the active's cluster c is a standby to
// promote: only when the marker agreed that this member is the active.
// A standby's cluster is never promoted otherwise.
func decidePromote(c cluster, agreed bool, dataDir string) (bool, error) {
	if !c.IsStandby() {
		return false, nil
	}
	if !agreed {
		return false, fmt.Errorf("%s holds a passive's copy, and this is the active: a copy is promoted only when the operator has "+
			"recorded this member as the active (--name and --active-marker), after stopping the other one", dataDir)
	}
	return true, nil
}

// decideReplace decides whether the passive's cluster c is a former
// active's to move aside: only when the marker agreed that the other
// member is the active. A primary's cluster is never replaced otherwise.
func decideReplace(c cluster, agreed bool, dataDir string) (bool, error) {
	if !c.Initialized() || c.IsStandby() {
		return false, nil
	}
	if !agreed {
		return false, fmt.Errorf("%s holds an active's cluster, and this is the passive: it is replaced by a copy of the active only when "+
			"the operator has recorded the other member as the active (--name and --active-marker)", dataDir)
	}
	return true, nil
}

// bootstrapStep is what the active does about --restore-archive.
type bootstrapStep struct {
	// StartOver removes a cluster whose load did not finish.
	StartOver bool
	// Load creates the cluster and loads the archive's database.
	Load bool
}

// decideBootstrap decides about a restore archive (archive "" for none):
// it is loaded only into a volume without a cluster (or one whose load did
// not finish: pending), and only while the server's database was never
// created (the created marker: decideActive refuses the lost volume then).
func decideBootstrap(archive string, pending, initialized bool, created marker) bootstrapStep {
	if archive == "" {
		return bootstrapStep{}
	}
	s := bootstrapStep{StartOver: pending && initialized}
	if initialized && !s.StartOver {
		return s
	}
	s.Load = !created.Present
	return s
}

// activeStep is what the active does to its cluster.
type activeStep struct {
	// InitDB creates the cluster (first start).
	InitDB bool
	// Replication sets up the replication account and slot (a pair).
	Replication bool
}

// decideActive decides how the active makes its cluster ready. A volume
// without a cluster whose server's database was created before (the
// created marker exists) is lost: it gets no new, empty database, which
// the passive would copy next (ErrVolumeLost).
func decideActive(initialized bool, created marker, standbyName, dataDir string) (activeStep, error) {
	if !initialized && created.Path != "" {
		switch {
		case created.Read:
			return activeStep{}, fmt.Errorf("%w (%s), but this server's database was created on %s: "+
				"refusing to create an empty one in its place, which the passive would then copy. With a passive, the operator "+
				"promotes it and this member copies it as the new passive; without one, bring the volume back or restore from a "+
				"backup (docs/OPERATOR.md, \"When a member is lost\"). To start over empty on purpose, "+
				"delete the key %s from the server's state Secret (SERVER-state)", ErrVolumeLost, dataDir, created.Value, filepath.Base(created.Path))
		case created.Err != nil:
			return activeStep{}, fmt.Errorf("reading %s: %w", created.Path, created.Err)
		}
	}
	return activeStep{InitDB: !initialized, Replication: standbyName != ""}, nil
}

// standbyStep is what the passive does with the standby it holds.
type standbyStep int

const (
	// keepFollowing: the standby can follow the active.
	keepFollowing standbyStep = iota
	// keepUnknown: whether it can follow is not known (the active did
	// not answer): it is kept.
	keepUnknown
	// copyAnew: the standby is stale (its replication slot is gone):
	// the active is copied anew, the old data directory kept beside it.
	copyAnew
)

// decideStandby decides from UpstreamStale's answer.
func decideStandby(stale bool, err error) standbyStep {
	switch {
	case err != nil:
		return keepUnknown
	case !stale:
		return keepFollowing
	}
	return copyAnew
}

// copyAfterFailedReseed reports whether a copy anew that failed (err)
// falls back to a first copy, which waits for the active: it failed to
// copy (for reason) and left no cluster (initialized after it).
func copyAfterFailedReseed(err error, initialized bool) (reason string, again bool) {
	var ce *pg.CopyError
	if !errors.As(err, &ce) || initialized {
		return "", false
	}
	return ce.Reason(), true
}

// nextCopyRetry is the wait after delay before the passive's next attempt
// to copy the active.
func nextCopyRetry(delay time.Duration) time.Duration {
	return min(2*delay, maxCopyRetry)
}
