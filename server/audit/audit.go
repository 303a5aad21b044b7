// Package audit is the tamper-evident audit log: security-relevant events
// recorded with their time, actor, source address, object and outcome, in
// hash chains that reveal the deletion, insertion, reordering or editing of
// any record, and periodically signed with the server's OpenPGP key.
//
// # Records and chains
//
// A Record extends a chain: it carries its sequence number (1, 2, ...) and
// the hash of the record before it (PrevHash; 32 zero bytes for the first),
// and its own Hash is SHA-256 over "kts-audit-v1\n", PrevHash and a
// canonical encoding of its fields (see Record.ComputeHash). Changing any
// field of any record changes its hash, which no longer matches the next
// record's PrevHash; deleting or inserting a record leaves a gap in the
// sequence or a PrevHash that does not match.
//
// There are two kinds of chain:
//
//   - the database chain (audit_log in PostgreSQL, chain name "db"): every
//     change to the database — a deposit created or deleted, a client
//     registered, enabled or disabled, an organization or auth code changed,
//     a backup or restore, an HSM key change — is appended in the same
//     transaction as the change itself, so that a change without its record
//     (or a record without its change) never commits. It replicates to the
//     passive and is part of every backup.
//   - each server's journal (files under audit/ in its state directory,
//     chain name "journal"): what changes nothing in the database — deposit
//     reads and listings, sessions opened, authentication failures, refused
//     requests — is appended there before the answer is sent. The passive,
//     whose database is a read-only standby, keeps its own.
//
// # Checkpoints
//
// A server signs the head of each chain it extends with its OpenPGP key
// every CheckpointEvery or CheckpointRecords records, and appends the
// signature as a record of its own (action "audit.checkpoint"). A chain
// rewritten from its start, by someone without the server's key, has no
// valid checkpoint; a chain whose signed part was cut off shows in the
// anchor file, where the server keeps its latest checkpoint of the database
// chain outside the database.
//
// # What is never recorded
//
// Auth codes, deposit contents, keys, PINs, signatures of requests, nonces
// and session tokens. Records hold identifiers (fingerprints, organization
// and deposit names, key labels), outcomes and short reasons.
package audit

import (
	"context"
	"errors"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Event is something to record. Time is set when the event is recorded if
// it is zero; Details must hold no secret.
type Event struct {
	Time    time.Time
	Actor   string
	Source  string
	Action  string
	Object  string
	Outcome string
	// Details are encoded as a JSON object; nil is {}.
	Details map[string]any
}

// Actions recorded.
const (
	ActionClientRegister  = "client.register"  // outcome: active, pending, or refused (details.reason)
	ActionClientState     = "client.state"     // an administrator enabled or disabled a client
	ActionDepositCreate   = "deposit.create"   // a PUT
	ActionDepositRead     = "deposit.read"     // a GET of one deposit
	ActionDepositDelete   = "deposit.delete"   // a DELETE
	ActionDepositList     = "deposit.list"     // a GET of the list
	ActionSessionOpen     = "session.open"     // a session token issued
	ActionAuthFailure     = "auth.failure"     // a request whose credentials were refused
	ActionOrgCreate       = "org.create"       // an organization created
	ActionOrgContacts     = "org.contacts"     // its contacts changed
	ActionOrgAuthCode     = "org.auth_code"    // its auth code set (never the code)
	ActionOrgExpiration   = "org.expiration"   // its expiration set
	ActionOrgRetire       = "org.retire"       // it was made to expire now
	ActionContactKey      = "contact.key"      // a contact registered an OpenPGP key
	ActionBackup          = "backup"           // kts backup: started, then ok or failed
	ActionRestore         = "restore"          // kts restore, recorded in the restored database
	ActionHSMInit         = "hsm.init"         // kts keyhsm init
	ActionHSMCheck        = "hsm.check"        // kts keyhsm check
	ActionHSMMigrate      = "hsm.migrate"      // kts keyhsm migrate
	ActionHSMRotate       = "hsm.rotate"       // kts keyhsm rotate
	ActionHSMKey          = "hsm.key"          // a deposit key version made current or retired
	ActionHSMRewrap       = "hsm.rewrap"       // deposits' data keys wrapped anew (a batch of migrate or rotate)
	ActionCheckpoint      = "audit.checkpoint" // a signature over the chain's head
	ActionJournalOpened   = "audit.journal"    // a server opened its journal
	ActionUnauditedServer = "audit.unaudited"  // a benchmark listener that records nothing was opened
)

// Outcomes. Refusals use the API's error code (such as "not_found").
const (
	OutcomeOK      = "ok"
	OutcomeActive  = "active"  // registration: accepted and active
	OutcomePending = "pending" // registration: waits for an administrator
	OutcomeRefused = "refused" // registration: refused (details.reason)
	OutcomeStarted = "started"
	OutcomeFailed  = "failed"
)

// ActorServer is the server itself (checkpoints, its own events).
const ActorServer = "server"

// ClientActor names a registered client by its fingerprint.
func ClientActor(fingerprint string) string { return "client:" + fingerprint }

// UnverifiedActor names the fingerprint a refused request claimed.
func UnverifiedActor(fingerprint string) string {
	if fingerprint == "" {
		return "anonymous"
	}
	return "unverified:" + fingerprint
}

// AdminCertActor names an administrator of the admin API by the common
// name of its client certificate.
func AdminCertActor(cn string) string { return "admin-cert:" + cn }

// LocalUser names the account running a local tool (kts org, backup,
// restore, keyhsm): "os:" and the user name, or the uid when the name is
// unknown.
func LocalUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "os:" + u.Username
	}
	return "os:uid=" + strconv.Itoa(os.Getuid())
}

// LocalSource is the source of an event made by a tool on this host.
func LocalSource() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "local"
	}
	return "local:" + h
}

// Actor is who causes the changes made with a context: the store records
// it with every change it makes.
type Actor struct {
	ID     string // as ClientActor, AdminCertActor, LocalUser or ActorServer make it
	Source string // the network address, or LocalSource
	// Details are added to the records of the changes (e.g. the address a
	// forwarded request claims to come from).
	Details map[string]any
}

type actorKey struct{}
type offKey struct{}

// WithActor returns a context whose changes are recorded as made by a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of ctx; without one, "unattributed".
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{ID: "unattributed", Source: ""}
}

// Unaudited returns a context whose operations record nothing. Only the
// benchmark's audit-off listener uses it, in the benchmark build only
// (kts-bench bench measures what the audit log costs), and opening that
// listener is itself recorded.
func Unaudited(ctx context.Context) context.Context { return context.WithValue(ctx, offKey{}, true) }

// IsUnaudited reports whether ctx records nothing (see Unaudited).
func IsUnaudited(ctx context.Context) bool {
	off, _ := ctx.Value(offKey{}).(bool)
	return off
}

// Change is an event made by the actor of ctx.
func Change(ctx context.Context, action, object, outcome string, details map[string]any) Event {
	return ChangeBy(ActorFrom(ctx), action, object, outcome, details)
}

// ChangeBy is an event made by a.
func ChangeBy(a Actor, action, object, outcome string, details map[string]any) Event {
	if len(a.Details) > 0 {
		merged := make(map[string]any, len(details)+len(a.Details))
		for k, v := range a.Details {
			merged[k] = v
		}
		for k, v := range details {
			merged[k] = v
		}
		details = merged
	}
	return Event{Actor: a.ID, Source: a.Source, Action: action, Object: object, Outcome: outcome, Details: details}
}

// ErrUnavailable means an event could not be recorded; the operation it
// belongs to was not carried out (the audit log fails closed).
var ErrUnavailable = errors.New("the audit log could not record this operation, so it was not carried out")

// Failures counts the operations refused because their audit record could
// not be written. Register it with the metrics registry. Every chain's
// series exists from the start, at 0, so an alert on any increase sees the
// first failure.
var Failures = withChains(prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kts_audit_failures_total",
	Help: "Operations refused because their audit record could not be written (fail closed), by chain.",
}, []string{"chain"}))

// Appended counts records appended, by chain.
var Appended = withChains(prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kts_audit_records_total",
	Help: "Audit records appended, by chain (db: the database's; journal: this server's).",
}, []string{"chain"}))

// Signed is, by chain, the Unix time at which the chain was last known
// signed up to its newest record: when a Checkpointer appended a checkpoint,
// or found the newest record already one (or the chain empty). A chain that
// takes records but is not signed (the key or the chain's storage failing)
// keeps an old time. Register it with the metrics registry; a chain's series
// appears once its Checkpointer first knows it signed.
var Signed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "kts_audit_checkpoint_timestamp_seconds",
	Help: "When the chain was last known signed up to its newest record (Unix time): its last checkpoint, or a later look that found nothing unsigned, by chain.",
}, []string{"chain"})

// Chain names, as export and verify show them.
const (
	ChainDB      = "db"
	ChainJournal = "journal"
)

// Chains are the chains' names, as the metrics label them.
var Chains = []string{ChainDB, ChainJournal}

// withChains creates v's series for every chain.
func withChains(v *prometheus.CounterVec) *prometheus.CounterVec {
	for _, c := range Chains {
		v.WithLabelValues(c)
	}
	return v
}

// Unavailable wraps err, the reason an event could not be recorded, as
// ErrUnavailable.
func Unavailable(err error) error {
	return &unavailableError{err: err}
}

// Failed counts n operations refused for want of their records (Failures).
func Failed(chain string, n int) {
	Failures.WithLabelValues(chain).Add(float64(n))
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string {
	return ErrUnavailable.Error() + ": " + e.err.Error()
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// IsUnavailable reports whether err says an event could not be recorded.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Recorder records events that change nothing in the database. Record
// returns once the event is recorded, or an error wrapping ErrUnavailable.
type Recorder interface {
	Record(ctx context.Context, e Event) error
}
