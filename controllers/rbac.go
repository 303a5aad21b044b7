// Package controllers reconciles the trustee.dev custom resources into the
// Kubernetes objects that run a Key Trustee Server. The objects are built by
// pure functions (builders_*.go) and applied by the reconcilers.
package controllers

// The operator's permissions, generated into config/rbac/role.yaml by
// `make manifests`. Each line is what one reconciler needs and no more.
//
// Its own resources:
// +kubebuilder:rbac:groups=trustee.dev,resources=keytrusteeservers;organizations;backupschedules,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=trustee.dev,resources=keytrusteeservers/status;organizations/status;backupschedules/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=trustee.dev,resources=keytrusteeservers/finalizers;organizations/finalizers;backupschedules/finalizers,verbs=update
//
// What a KeyTrusteeServer becomes (docs/OPERATOR.md). Secrets are also read
// for Organizations' auth codes and the operator's admin certificate. The
// operator deletes only the passive's StatefulSet and Service when high
// availability is turned off; everything else it made goes with its owner
// (garbage collection), so it may not delete it. It writes them with
// server-side apply (create, patch) or a patch, never a whole update.
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates;issuers,verbs=get;list;watch;create;patch
// The PodMonitor of spec.monitoring.enablePodMonitor, applied (server-side
// apply) and deleted when no longer asked for; never watched, so that the
// operator runs without the Prometheus operator's CRDs:
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=create;patch;delete
//
// A member's pod stuck on a template its StatefulSet no longer wants, which
// the StatefulSet does not replace, is deleted so that the StatefulSet
// re-creates it (revert.go, decideRevert: only the members' own pods, and
// only when that is safe); no other pod is ever deleted.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
//
// The members' volumes: their claims are watched, and patched to grow
// them (spec.storage.size) where their StorageClass allows it, which the
// operator reads (a cluster-scoped object, read only while a growth is
// pending) to refuse a growth it cannot make instead of trying it:
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get
//
// Observed for status, never changed:
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch
//
// What a BackupSchedule becomes:
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;patch
//
// Events on the custom resources:
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
//
// The metrics endpoint authenticates and authorizes its callers:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
