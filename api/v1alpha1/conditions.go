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
	// the new template (the active is then left as it was); ReplacingPod or
	// ReplaceRefused when a pod is stuck on a template no longer wanted.
	ConditionUpgrading = "Upgrading"

	// ConditionSwitchover is True while the roles of the pair change: the
	// active is fenced, then the passive promoted, then the old active
	// rejoins as the passive. False says why none runs: none asked, done,
	// or refused (the pair is not in sync) — or, True with reason
	// ActiveLost, that the operator promotes the passive because the
	// active's data is gone.
	ConditionSwitchover = "Switchover"

	// ConditionStorageResized is True when every member's
	// PersistentVolumeClaim has the size spec.storage.size asks for and the
	// StatefulSets make new claims of that size. While a larger size is
	// applied it is False with reason Growing (the passive's claim first,
	// then the active's) or RecreatingStatefulSets; a size the claims
	// cannot be grown to is False with reason ResizeRefused, nothing
	// changed, the message saying why.
	ConditionStorageResized = "StorageResized"

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
	// ReasonReplacingPod: a member's pod is stuck on a revision its
	// StatefulSet no longer wants (a change that was reverted) and never
	// became ready on it; the StatefulSet does not replace such a pod, so
	// the operator deletes it and the StatefulSet re-creates it.
	ReasonReplacingPod = "ReplacingPod"
	// ReasonReplaceRefused: such a pod is stuck, but the operator does not
	// delete it; the message says why and what to do.
	ReasonReplaceRefused = "ReplaceRefused"

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

	// ReasonResized: every member's claim has the size the spec asks for.
	ReasonResized = "Resized"
	// ReasonGrowing: a member's claim asks for the new size and the storage
	// driver grows its volume; the active's waits for the passive's.
	ReasonGrowing = "Growing"
	// ReasonRecreatingStatefulSets: both claims have grown; the members'
	// StatefulSets are deleted without their pods and made again with the
	// new claim template, adopting the running pods.
	ReasonRecreatingStatefulSets = "RecreatingStatefulSets"
	// ReasonResizeRefused: the claims cannot be grown to the size the spec
	// asks for (their StorageClass does not allow expansion or is missing,
	// or the size is below what they have); nothing was changed.
	ReasonResizeRefused = "ResizeRefused"
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
