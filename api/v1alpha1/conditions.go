package v1alpha1

// Condition types. Every kind reports Ready; a KeyTrusteeServer also reports
// how each part of the pair is doing. Conditions are []metav1.Condition in
// the status, each with the observedGeneration it was computed for.
const (
	// ConditionReady is True when the object does what its spec asks: for a
	// KeyTrusteeServer, the active server answers and (with high
	// availability) the passive is a synchronous standby; for an
	// Organization, the organization on the server matches the spec; for a
	// BackupSchedule, its CronJob is in place.
	ConditionReady = "Ready"

	// ConditionProgressing is True while the operator is moving the objects
	// towards the spec (creating members, rolling out a new image, ...).
	ConditionProgressing = "Progressing"

	// ConditionDegraded is True when the server works but with less than the
	// spec asks for, such as an active without its passive.
	ConditionDegraded = "Degraded"

	// ConditionActiveReady is True when the active member's pod is ready:
	// its server answers over HTTPS and its PostgreSQL is the primary.
	ConditionActiveReady = "ActiveReady"

	// ConditionPassiveReady is True when the passive member's pod is ready.
	// Without high availability it is False with reason
	// ReasonHighAvailabilityDisabled.
	ConditionPassiveReady = "PassiveReady"

	// ConditionReplicating is True when the passive's PostgreSQL is the
	// active's synchronous standby, so that every acknowledged write is on
	// both members. While it is False, writes fail fast (HTTP 503).
	ConditionReplicating = "Replicating"

	// ConditionUpgrading is True while a change of the members' pod
	// template (such as a new image) rolls out: the passive first, then the
	// active once the passive is ready and in sync again. Its reason says
	// which step it is in, or RollStopped when the passive did not start on
	// the new template (the active is then left as it was).
	ConditionUpgrading = "Upgrading"

	// ConditionSwitchover is True while the roles of the pair change: the
	// active is fenced, then the passive promoted, then the old active
	// rejoins as the passive. False says why none runs: none asked, done,
	// or refused (the pair is not in sync) — or, True with reason
	// ActiveLost, that the operator promotes the passive because the
	// active's data is gone.
	ConditionSwitchover = "Switchover"

	// ConditionCertificateReady is True when the TLS certificate the servers
	// use is present and valid: issued by cert-manager, or read from the
	// Secret named in the spec.
	ConditionCertificateReady = "CertificateReady"

	// ConditionPodMonitorReady is, on a KeyTrusteeServer whose
	// spec.monitoring.enablePodMonitor is true, whether its PodMonitor is in
	// place. Absent when no PodMonitor is asked for.
	ConditionPodMonitorReady = "PodMonitorReady"

	// ConditionLastBackupSucceeded is, on a BackupSchedule, the outcome of
	// the most recent backup Job that finished.
	ConditionLastBackupSucceeded = "LastBackupSucceeded"
)

// Condition reasons: short CamelCase words, the same across kinds where the
// meaning is the same.
const (
	// ReasonReconciled: the objects match the spec.
	ReasonReconciled = "Reconciled"
	// ReasonCreating: the objects are being created.
	ReasonCreating = "Creating"
	// ReasonUpdating: a change of the spec is being rolled out.
	ReasonUpdating = "Updating"
	// ReasonInvalidSpec: the spec passed admission but cannot be carried out
	// (the message says why).
	ReasonInvalidSpec = "InvalidSpec"

	// ReasonPodReady: the member's pod is ready.
	ReasonPodReady = "PodReady"
	// ReasonPodNotReady: the member's pod exists but is not ready.
	ReasonPodNotReady = "PodNotReady"
	// ReasonPodMissing: the member's pod does not exist (yet).
	ReasonPodMissing = "PodMissing"
	// ReasonHighAvailabilityDisabled: the server runs standalone, without a
	// passive member, as spec.highAvailability.enabled asks.
	ReasonHighAvailabilityDisabled = "HighAvailabilityDisabled"

	// ReasonStreaming: the passive is the active's synchronous standby.
	ReasonStreaming = "Streaming"
	// ReasonNotStreaming: the passive is not (yet) a synchronous standby.
	ReasonNotStreaming = "NotStreaming"

	// ReasonCertificateIssued: cert-manager issued the certificate.
	ReasonCertificateIssued = "Issued"
	// ReasonCertificatePending: cert-manager has not issued it yet.
	ReasonCertificatePending = "Pending"
	// ReasonSecretNotFound: a Secret the spec refers to does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretInvalid: a Secret the spec refers to lacks a key or holds
	// something unusable (the message says which key, never its value).
	ReasonSecretInvalid = "SecretInvalid"

	// ReasonServerNotFound: the KeyTrusteeServer in serverRef does not exist.
	ReasonServerNotFound = "ServerNotFound"
	// ReasonServerNotReady: the KeyTrusteeServer in serverRef is not Ready.
	ReasonServerNotReady = "ServerNotReady"
	// ReasonSynced: the organization on the server matches the spec.
	ReasonSynced = "Synced"
	// ReasonSyncFailed: the server refused or failed a change.
	ReasonSyncFailed = "SyncFailed"

	// ReasonUpToDate: every member runs the pod template the spec gives.
	ReasonUpToDate = "UpToDate"
	// ReasonUpdatingPassive: a changed pod template rolls out to the passive
	// first; the active keeps serving.
	ReasonUpdatingPassive = "UpdatingPassive"
	// ReasonWaitingForSync: the passive runs the new template; the active
	// restarts once the passive is its synchronous standby again.
	ReasonWaitingForSync = "WaitingForSync"
	// ReasonUpdatingActive: the active restarts on the new template; writes
	// pause until it is back.
	ReasonUpdatingActive = "UpdatingActive"
	// ReasonRollStopped: the passive did not start on the new template; the
	// active is untouched.
	ReasonRollStopped = "RollStopped"

	// ReasonActiveAsSpecified: the active member is the one spec.activeMember
	// names (or, with it empty, the one that was active).
	ReasonActiveAsSpecified = "ActiveAsSpecified"
	// ReasonSwitchoverRefused: spec.activeMember names the passive, but the
	// pair is not ready and in sync: nothing was changed.
	ReasonSwitchoverRefused = "SwitchoverRefused"
	// ReasonFencing: the active's pod is being stopped so that it accepts
	// no more writes, before the passive is promoted.
	ReasonFencing = "Fencing"
	// ReasonPromoting: the old active is fenced; the passive restarts as
	// the active.
	ReasonPromoting = "Promoting"
	// ReasonRejoining: the new active serves; the old active restarts as
	// the passive and copies it.
	ReasonRejoining = "Rejoining"
	// ReasonActiveLost: the active's volume holds no database although the
	// server's database existed; the operator fences it and promotes the
	// passive, which holds every acknowledged write.
	ReasonActiveLost = "ActiveLost"

	// ReasonPodMonitorApplied: the PodMonitor is as the spec asks.
	ReasonPodMonitorApplied = "Applied"
	// ReasonPodMonitorCRDMissing: the cluster has no PodMonitor kind
	// (monitoring.coreos.com/v1): the Prometheus operator's CRDs are not
	// installed.
	ReasonPodMonitorCRDMissing = "CRDMissing"
	// ReasonPodMonitorFailed: the PodMonitor could not be applied (the
	// message says why).
	ReasonPodMonitorFailed = "ApplyFailed"

	// ReasonSuspended: spec.suspend stops new backups.
	ReasonSuspended = "Suspended"
	// ReasonBackupSucceeded: the last backup Job finished and wrote an archive.
	ReasonBackupSucceeded = "Succeeded"
	// ReasonBackupFailed: the last backup Job failed.
	ReasonBackupFailed = "Failed"
	// ReasonRestoreDrillFailed: the last backup Job wrote its archive, but
	// the archive did not restore whole (spec.verify).
	ReasonRestoreDrillFailed = "RestoreDrillFailed"
	// ReasonNoBackupYet: no backup Job has finished yet.
	ReasonNoBackupYet = "NoBackupYet"
)
