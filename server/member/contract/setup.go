package contract

// The flags of `kts member setup`.
const (
	FlagMember         = "member"
	FlagConfig         = "config"
	FlagConfdir        = "confdir"
	FlagConfigOnly     = "config-only"
	FlagName           = "name"
	FlagActiveMarker   = "active-marker"
	FlagCreatedMarker  = "created-marker"
	FlagRestoreArchive = "restore-archive"
	FlagRestoreKey     = "restore-key"
)

// Setup is what `kts member setup` is asked to do: the operator builds its
// arguments with Args, and the command parses them back into it.
type Setup struct {
	// Member is the role this member is given: active or passive.
	Member string
	// ConfigFile is the member's keytrustee.conf as the operator renders
	// it, installed into Dir (the state directory).
	ConfigFile, Dir string
	// ConfigOnly installs and checks the configuration and touches no
	// PostgreSQL (a backup Job's pod).
	ConfigOnly bool
	// Name is the member's name in the pair (MemberA or MemberB) and
	// ActiveMarker the file of KeyActiveMember: together they allow a
	// change of role the operator recorded.
	Name, ActiveMarker string
	// CreatedMarker is the file of KeyDatabaseCreated: it exists once the
	// server's database was first created.
	CreatedMarker string
	// RestoreArchive, when set, is a backup archive whose database a new
	// active's cluster starts with, decrypted with RestoreKey.
	RestoreArchive, RestoreKey string
}

// Args are the arguments of `kts` that run s.
func (s Setup) Args() []string {
	args := []string{"member", "setup", "--" + FlagMember, s.Member}
	if s.ConfigOnly {
		args = append(args, "--"+FlagConfigOnly)
	}
	args = append(args, "--"+FlagConfig, s.ConfigFile, "--"+FlagConfdir, s.Dir)
	for _, f := range []struct{ flag, value string }{
		{FlagName, s.Name},
		{FlagActiveMarker, s.ActiveMarker},
		{FlagCreatedMarker, s.CreatedMarker},
		{FlagRestoreArchive, s.RestoreArchive},
		{FlagRestoreKey, s.RestoreKey},
	} {
		if f.value != "" {
			args = append(args, "--"+f.flag, f.value)
		}
	}
	return args
}
