// Package contract is what the operator and a member's pod agree on: the
// containers of a member's pod, the arguments of its `kts member setup`,
// the keys of the state Secret both read, setup's exit status for a lost
// volume, and the active's /readyz answer with the one rule for "the
// passive is in sync". The operator (controllers) builds and reads these;
// the pod's commands (server/member, server/daemon) honour and write them.
// It imports nothing of either side.
package contract

import "time"

// The containers of a member's pod.
const (
	// ContainerSetup is the init container running `kts member setup`; its
	// exit status ExitVolumeLost tells the operator the volume was lost.
	ContainerSetup = "setup"
	// ContainerPostgreSQL runs `kts db run`.
	ContainerPostgreSQL = "postgresql"
	// ContainerServer runs `kts server`.
	ContainerServer = "server"
)

// The members of a pair, as the state Secret's KeyActiveMember names
// them.
const (
	MemberA = "a"
	MemberB = "b"
)

// Keys of the state Secret (SERVER-state) the operator writes and each
// member's setup reads, mounted as files. Only the operator writes that
// Secret: the identity Secret may be owned by a secret manager.
const (
	// KeyActiveMember names the member holding the active role (MemberA
	// while it is absent). The operator writes it when it promotes the
	// passive, after fencing the active; setup (--active-marker) promotes a
	// standby, or copies the new active over a former active's cluster,
	// only when it agrees. Kept in a Secret, it outlives the
	// KeyTrusteeServer and its status.
	KeyActiveMember = "active-member"
	// KeyDatabaseCreated records when the server's database was first
	// seen serving: from then on the active's setup (--created-marker)
	// refuses to create an empty database on an empty volume.
	KeyDatabaseCreated = "database-created"
)

// ExitVolumeLost is the exit status of `kts member setup` when it refuses
// to create an empty database on an empty volume because the server's
// database existed before: the member's data is lost. The operator reads it
// from the setup container's termination and promotes the passive.
const ExitVolumeLost = 3

// RecordedActive is the member a state Secret's KeyActiveMember value
// names: MemberB only when it says so, MemberA otherwise.
func RecordedActive(value []byte) string {
	if string(value) == MemberB {
		return MemberB
	}
	return MemberA
}

// ReadyzPath is where a server answers whether it is ready, with Readyz on
// the active.
const ReadyzPath = "/readyz"

// Readyz is the active's /readyz answer (the fields in the order JSON
// gave them when it was a map, so the bytes stay the same).
type Readyz struct {
	Replication Replication `json:"replication"`
	Role        string      `json:"role"`
	Status      string      `json:"status"`
	Writable    bool        `json:"writable"`
	// WriteRefusal says why writes are refused (Writable false).
	WriteRefusal string `json:"write_refusal,omitempty"`
}

// Replication is the active's view of its synchronous standby.
type Replication struct {
	Paired    bool      `json:"paired"` // synchronous_standby_names is set
	Attached  bool      `json:"attached"`
	SyncState string    `json:"sync_state,omitempty"`
	LagBytes  int64     `json:"lag_bytes"`
	CheckedAt time.Time `json:"checked_at"`
	Err       string    `json:"error,omitempty"`
}

// PassiveReadyz is the passive's /readyz answer.
type PassiveReadyz struct {
	ActiveURL                      string   `json:"active_url"`
	InRecovery                     bool     `json:"in_recovery"`
	Role                           string   `json:"role"`
	SecondsSinceLastReplayedCommit *float64 `json:"seconds_since_last_replayed_commit"`
	Status                         string   `json:"status"`
	WALReceiver                    *string  `json:"wal_receiver"`
}

// SyncStateSync is pg_stat_replication's sync_state of a synchronous
// standby (the active names one, FIRST 1).
const SyncStateSync = "sync"

// InSync reports whether the passive is the active's synchronous standby:
// attached (streaming) and in sync_state "sync". Every commit then waits
// for it, so a write the active confirms is on both members. Every side
// that asks (the server's write gate, the schema's wait, the operator's
// switchover, roll and status) asks this.
func InSync(attached bool, syncState string) bool {
	return attached && syncState == SyncStateSync
}
