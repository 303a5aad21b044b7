package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupSchedule backs up a Key Trustee Server on a cron schedule, as
// `ktbackup.sh` run from cron does: a CronJob runs `kts backup` against one
// member and writes OpenPGP-encrypted archives (kts_bak_<host>_<time>.tar.gpg)
// to a volume; `gpg -d` opens them and `kts restore` puts them back.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ktsbackup,categories=trustee
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.serverRef.name`,description="The KeyTrusteeServer backed up"
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`,description="When backups run (cron)"
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`,description="Whether new backups are stopped"
// +kubebuilder:printcolumn:name="Last Success",type=date,JSONPath=`.status.lastSuccessfulTime`,description="When the last backup that succeeded finished"
// +kubebuilder:printcolumn:name="Last Archive",type=string,JSONPath=`.status.lastArchive`,priority=1,description="The archive the last successful backup wrote"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupSchedule struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the schedule the user asks for.
	// +required
	Spec BackupScheduleSpec `json:"spec"`

	// status is what the operator last observed.
	// +optional
	Status BackupScheduleStatus `json:"status,omitempty"`
}

// Members of a server that a backup can read.
const (
	BackupMemberActive  = "Active"
	BackupMemberPassive = "Passive"
)

// BackupScheduleSpec is the desired state of a backup schedule.
//
// +kubebuilder:validation:XValidation:rule="has(self.gpgRecipient) || (has(self.cleartext) && self.cleartext)",message="backups hold every key of the server, so they are encrypted: set gpgRecipient to the administrator's OpenPGP public key (or, never in production, cleartext: true for unencrypted archives)"
// +kubebuilder:validation:XValidation:rule="!(has(self.gpgRecipient) && has(self.cleartext) && self.cleartext)",message="gpgRecipient and cleartext: true contradict each other: choose one"
// +kubebuilder:validation:XValidation:rule="!has(self.verify) || !has(self.gpgRecipient) || has(self.verify.decryptionKeyRef)",message="verify restores each encrypted archive, which takes the secret key that decrypts it: set verify.decryptionKeyRef to a Secret holding the armored secret key of gpgRecipient"
type BackupScheduleSpec struct {
	// serverRef is the KeyTrusteeServer, in the same namespace, to back up.
	// +required
	ServerRef ServerReference `json:"serverRef"`

	// schedule is when backups run, in cron syntax: five fields (minute,
	// hour, day of month, month, day of week), e.g. "*/30 * * * *" or
	// "15 2 * * MON-FRI", or a descriptor such as @daily or "@every 6h".
	// The time zone is timeZone's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule=`self.matches('^ *(([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]{0,3})?(,([*]|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]{0,3})?)*) +(([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]{0,3})?(,([*]|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]{0,3})?)*) +(([*]|[?]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]{0,3})?(,([*]|[?]|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]{0,3})?)*) +(([*]|(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(-(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(/[1-9][0-9]{0,3})?(,([*]|(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec))(-(0?[1-9]|1[0-2]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)))?)(/[1-9][0-9]{0,3})?)*) +(([*]|[?]|([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(/[1-9][0-9]{0,3})?(,([*]|[?]|([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat))(-([0-6]|(?i:sun|mon|tue|wed|thu|fri|sat)))?)(/[1-9][0-9]{0,3})?)*) *$') || self.matches('^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$') || self.matches('^@every [0-9]{1,6}([.][0-9]{1,6})?(ns|us|ms|s|m|h)([0-9]{1,6}([.][0-9]{1,6})?(ns|us|ms|s|m|h))*$')`,message="schedule must be a cron expression of five fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT; each *, a value, a range a-b, a list a,b and an optional /step), e.g. \"*/30 * * * *\", or one of @yearly, @monthly, @weekly, @daily, @hourly, \"@every 6h\"; give the time zone in timeZone, not in the schedule"
	// +required
	Schedule string `json:"schedule"`

	// timeZone is the IANA time zone the schedule is read in, e.g.
	// Europe/Paris. Empty means the time zone of kube-controller-manager
	// (usually UTC).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_+/-]+$`
	// +optional
	TimeZone *string `json:"timeZone,omitempty"`

	// suspend stops new backups from starting; running ones finish.
	// +kubebuilder:default=false
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// member is the server backed up: Passive (the default), so that the
	// active is not slowed, or Active. A server without high availability is
	// backed up from its active member whatever this says.
	// +kubebuilder:validation:Enum=Active;Passive
	// +kubebuilder:default="Passive"
	// +optional
	Member string `json:"member,omitempty"`

	// gpgRecipient is the OpenPGP public key the archives are encrypted to
	// (kts backup --gpg-recipient). Required unless cleartext is true.
	// +optional
	GPGRecipient *GPGRecipient `json:"gpgRecipient,omitempty"`

	// cleartext writes unencrypted archives (kts backup --cleartext). They
	// hold every key of the server: never use it in production. It must be
	// asked for explicitly, and excludes gpgRecipient.
	// +optional
	Cleartext bool `json:"cleartext,omitempty"`

	// roll keeps only the newest roll archives of the server in the
	// destination after each backup (kts backup --roll): 1 keeps only the
	// new one. Empty keeps every archive.
	// +kubebuilder:validation:XValidation:rule="self >= 1",message="roll must be at least 1: the number of newest backups to keep, counting the new one"
	// +kubebuilder:validation:Maximum=100000
	// +optional
	Roll *int32 `json:"roll,omitempty"`

	// destination is the volume the archives are written to.
	// +required
	Destination BackupDestination `json:"destination"`

	// verify makes every backup a restore drill as well (kts backup
	// --verify): the new archive is restored into a throw-away PostgreSQL in
	// the backup's Job and compared table by table with what was backed up.
	// An archive that does not restore whole fails the backup (it is kept,
	// and roll removes no older archive for it). Empty: no drill.
	// +optional
	Verify *BackupVerify `json:"verify,omitempty"`
}

// BackupVerify is how a backup Job checks that its archive restores.
type BackupVerify struct {
	// decryptionKeyRef is the key of a Secret holding the armored OpenPGP
	// secret key that decrypts the archives (the one gpgRecipient names),
	// without a passphrase. Required for encrypted archives; only the
	// backup Job mounts it.
	// +optional
	DecryptionKeyRef *SecretKeySelector `json:"decryptionKeyRef,omitempty"`
}

// GPGRecipient is an OpenPGP public key to encrypt backups to, read from a
// Secret or a ConfigMap (a public key is not secret).
//
// +kubebuilder:validation:XValidation:rule="has(self.secretKeyRef) != has(self.configMapKeyRef)",message="gpgRecipient needs exactly one of secretKeyRef or configMapKeyRef: where the armored public key is"
type GPGRecipient struct {
	// recipient names the key to encrypt to among those in the file: its
	// fingerprint (best), e-mail address or name, as for
	// kts backup --gpg-recipient.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	Recipient string `json:"recipient"`

	// secretKeyRef is the key of a Secret holding the armored public key(s).
	// +optional
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`

	// configMapKeyRef is the key of a ConfigMap holding the armored public
	// key(s).
	// +optional
	ConfigMapKeyRef *ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`
}

// BackupDestination is where archives are written (kts backup --output).
type BackupDestination struct {
	// claimName is a PersistentVolumeClaim in the same namespace that the
	// backup Jobs mount; ReadWriteMany, unless every Job runs on one node.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	ClaimName string `json:"claimName"`

	// subPath is the directory in the volume the archives go to, relative
	// to its root. Empty means the root.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="destination.subPath must be relative to the volume's root"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="destination.subPath must not contain '..'"
	// +optional
	SubPath string `json:"subPath,omitempty"`
}

// BackupScheduleStatus is what the operator last observed of a backup
// schedule.
type BackupScheduleStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the CronJob is in place) and LastBackupSucceeded.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// lastScheduleTime is when a backup was last started.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// lastSuccessfulTime is when the last successful backup finished.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// lastArchive is the file name of the archive the last successful backup
	// wrote, in the destination, e.g.
	// kts_bak_kts-b-0_2026-05-01_02-15-00.tar.gpg.
	// +optional
	LastArchive string `json:"lastArchive,omitempty"`

	// lastFailureTime is when the last failed backup ended.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// lastFailureReason says why the last failed backup failed.
	// +optional
	LastFailureReason string `json:"lastFailureReason,omitempty"`

	// lastVerification is what the restore drill of lastArchive found
	// (with spec.verify), e.g. "restore drill: ok, 11 tables and 72 rows
	// restored as they were backed up (...)".
	// +optional
	LastVerification string `json:"lastVerification,omitempty"`
}

// BackupScheduleList is a list of BackupSchedules.
//
// +kubebuilder:object:root=true
type BackupScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the backup schedules.
	Items []BackupSchedule `json:"items"`
}
