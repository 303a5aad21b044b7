package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// BackupReconciler turns a BackupSchedule into a CronJob running
// `kts backup`, and reports its Jobs in the status.
type BackupReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Options
}

// Reconcile brings one BackupSchedule's CronJob to its spec and reads back
// how its Jobs went.
func (r *BackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	bs := &trusteev1.BackupSchedule{}
	if err := r.Get(ctx, req.NamespacedName, bs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bs.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	orig := bs.DeepCopy()
	kts := &trusteev1.KeyTrusteeServer{}
	err := r.Get(ctx, types.NamespacedName{Namespace: bs.Namespace, Name: bs.Spec.ServerRef.Name}, kts)
	if apierrors.IsNotFound(err) {
		setConditions(&bs.Status.Conditions, []metav1.Condition{{Type: trusteev1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: trusteev1.ReasonServerNotFound, ObservedGeneration: bs.Generation,
			Message: fmt.Sprintf("KeyTrusteeServer %s does not exist in namespace %s", bs.Spec.ServerRef.Name, bs.Namespace)}})
		return ctrl.Result{RequeueAfter: notReadyRecheck}, r.patchStatus(ctx, orig, bs)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	in := backupInputs{Schedule: bs, Server: serverInputs{KTS: kts, DefaultImage: r.DefaultImage, Active: kts.Status.ActiveMember}}
	cm, err := in.configMap()
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, o := range []client.Object{cm, in.cronJob()} {
		if err := apply(ctx, r.Client, r.Scheme, bs, o); err != nil {
			r.Recorder.Eventf(bs, nil, corev1.EventTypeWarning, "ReconcileFailed", "Reconcile", "%v", err)
			return ctrl.Result{}, err
		}
	}

	cj := &batchv1.CronJob{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: bs.Namespace, Name: in.meta().Name}, cj); err != nil {
		return ctrl.Result{}, err
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(bs.Namespace), client.MatchingLabels{labelBackup: bs.Name}); err != nil {
		return ctrl.Result{}, err
	}
	results := make([]backupResult, 0, len(jobs.Items))
	for i := range jobs.Items {
		res, err := r.jobResult(ctx, &jobs.Items[i])
		if err != nil {
			return ctrl.Result{}, err
		}
		results = append(results, res)
	}
	before := bs.Status
	bs.Status = backupStatus(bs, cj.Status.LastScheduleTime, results)
	r.announce(bs, before)
	return ctrl.Result{}, r.patchStatus(ctx, orig, bs)
}

func (r *BackupReconciler) patchStatus(ctx context.Context, orig, bs *trusteev1.BackupSchedule) error {
	return r.Status().Patch(ctx, bs, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// announce emits an event for a backup that finished since the last look.
func (r *BackupReconciler) announce(bs *trusteev1.BackupSchedule, before trusteev1.BackupScheduleStatus) {
	now := bs.Status
	if t := now.LastSuccessfulTime; t != nil && (before.LastSuccessfulTime == nil || t.After(before.LastSuccessfulTime.Time)) {
		r.Recorder.Eventf(bs, nil, corev1.EventTypeNormal, "BackupSucceeded", "Backup", "wrote %s", now.LastArchive)
	}
	if t := now.LastFailureTime; t != nil && (before.LastFailureTime == nil || t.After(before.LastFailureTime.Time)) {
		r.Recorder.Eventf(bs, nil, corev1.EventTypeWarning, "BackupFailed", "Backup", "%s", now.LastFailureReason)
	}
}

// backupResult is a finished (or running) backup Job as the status needs it.
type backupResult struct {
	Job       string
	Started   metav1.Time
	Finished  *metav1.Time
	Succeeded bool
	// Message is the backup container's termination message: the archive's
	// name on success, the error on failure.
	Message string
}

// jobResult reads how a backup Job ended, from its conditions and its
// pod's termination message.
func (r *BackupReconciler) jobResult(ctx context.Context, j *batchv1.Job) (backupResult, error) {
	res := backupResult{Job: j.Name, Started: j.CreationTimestamp}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			res.Succeeded, res.Finished = true, &c.LastTransitionTime
		case batchv1.JobFailed:
			res.Finished, res.Message = &c.LastTransitionTime, c.Message
		}
	}
	if res.Finished == nil {
		return res, nil
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(j.Namespace), client.MatchingLabels{batchv1.JobNameLabel: j.Name}); err != nil {
		return res, err
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; cs.Name == "backup" && t != nil && strings.TrimSpace(t.Message) != "" {
				if res.Succeeded && t.ExitCode == 0 {
					res.Message = strings.TrimSpace(t.Message)
				} else if !res.Succeeded && t.ExitCode != 0 {
					res.Message = strings.TrimSpace(t.Message)
				}
			}
		}
	}
	return res, nil
}

func finishedAt(r backupResult) time.Time {
	if r.Finished == nil {
		return time.Time{}
	}
	return r.Finished.Time
}

// backupStatus is the status a schedule shows for its Jobs.
func backupStatus(bs *trusteev1.BackupSchedule, lastSchedule *metav1.Time, results []backupResult) trusteev1.BackupScheduleStatus {
	st := bs.Status
	st.ObservedGeneration = bs.Generation
	st.LastScheduleTime = lastSchedule
	// Creation times have a resolution of a second: Jobs made in the same
	// one are ordered by when they ended, then by name.
	slices.SortFunc(results, func(a, b backupResult) int {
		return cmp.Or(a.Started.Compare(b.Started.Time), finishedAt(a).Compare(finishedAt(b)), strings.Compare(a.Job, b.Job))
	})
	var last *backupResult
	for i := range results {
		r := &results[i]
		if r.Finished == nil {
			continue
		}
		last = r
		if r.Succeeded {
			// The archive's name, then what its restore drill found.
			archive, drill, _ := strings.Cut(r.Message, "\n")
			st.LastSuccessfulTime, st.LastArchive, st.LastVerification = r.Finished, archive, strings.TrimSpace(drill)
		} else {
			st.LastFailureTime = r.Finished
			st.LastFailureReason = fmt.Sprintf("Job %s failed: %s", r.Job, orDefault(r.Message, "no reason given"))
		}
	}
	ready := metav1.Condition{Type: trusteev1.ConditionReady, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonReconciled,
		Message: fmt.Sprintf("backups run on the schedule %q", bs.Spec.Schedule)}
	if bs.Spec.Suspend {
		ready.Reason, ready.Message = trusteev1.ReasonSuspended, "suspended: no new backups start"
	}
	backup := metav1.Condition{Type: trusteev1.ConditionLastBackupSucceeded, Status: metav1.ConditionUnknown, Reason: trusteev1.ReasonNoBackupYet, Message: "no backup has finished yet"}
	switch {
	case last == nil:
	case last.Succeeded:
		backup.Status, backup.Reason, backup.Message = metav1.ConditionTrue, trusteev1.ReasonBackupSucceeded, fmt.Sprintf("Job %s wrote %s", last.Job, st.LastArchive)
		if st.LastVerification != "" {
			backup.Message += "; " + st.LastVerification
		}
		if last.Message == "" {
			backup.Message = fmt.Sprintf("Job %s succeeded; its pod left no archive name", last.Job)
		}
	case strings.Contains(last.Message, ": restore drill failed: "):
		backup.Status, backup.Reason, backup.Message = metav1.ConditionFalse, trusteev1.ReasonRestoreDrillFailed, st.LastFailureReason
	default:
		backup.Status, backup.Reason, backup.Message = metav1.ConditionFalse, trusteev1.ReasonBackupFailed, st.LastFailureReason
	}
	for _, c := range []metav1.Condition{ready, backup} {
		c.ObservedGeneration = bs.Generation
		setConditions(&st.Conditions, []metav1.Condition{c})
	}
	return st
}

// SetupWithManager watches BackupSchedules, their CronJobs, and the Jobs
// those create.
func (r *BackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&trusteev1.BackupSchedule{}).
		Owns(&batchv1.CronJob{}).
		Owns(&corev1.ConfigMap{}).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(scheduleOfJob)).
		Watches(&trusteev1.KeyTrusteeServer{}, handler.EnqueueRequestsFromMapFunc(r.schedulesOfServer)).
		Complete(r)
}

// schedulesOfServer maps a server to its BackupSchedules, so that a
// switchover moves their Jobs to the member that now holds the role they
// back up.
func (r *BackupReconciler) schedulesOfServer(ctx context.Context, o client.Object) []ctrl.Request {
	var list trusteev1.BackupScheduleList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		log.FromContext(ctx).Error(err, "listing the BackupSchedules of a server", "server", o.GetName())
		return nil
	}
	var out []ctrl.Request
	for _, b := range list.Items {
		if b.Spec.ServerRef.Name == o.GetName() {
			out = append(out, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Name}})
		}
	}
	return out
}

func scheduleOfJob(_ context.Context, o client.Object) []ctrl.Request {
	name := o.GetLabels()[labelBackup]
	if name == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}
