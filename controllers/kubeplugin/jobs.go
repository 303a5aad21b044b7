package kubeplugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// What the operator puts on a BackupSchedule's CronJob and its Jobs, and
// what kubectl puts on a Job made from a CronJob.
const (
	labelBackup    = "trustee.dev/backup-schedule"
	labelComponent = "app.kubernetes.io/component"
	// backupContainer runs kts backup in the CronJob's pods.
	backupContainer = "backup"
	// annotationInstantiate marks a Job made by hand from a CronJob, as
	// `kubectl create job --from=cronjob/...` does.
	annotationInstantiate = "cronjob.kubernetes.io/instantiate"
)

// What a restore drill's Job carries.
const (
	// labelDrill names the BackupSchedule whose archive a drill Job checks.
	// Drill Jobs do not carry labelBackup: the schedule's status reports
	// backups, and a drill writes none.
	labelDrill        = "trustee.dev/restore-drill"
	componentDrill    = "restore-drill"
	annotationArchive = "trustee.dev/archive"
	drillContainer    = "drill"
	// drillKeyVolume holds the secret key --decryption-key names, at
	// mountDrillKey in the drill's container only.
	drillKeyVolume = "drill-key"
	mountDrillKey  = "/etc/kts/drill-key"
	// drillTTL is how long a finished drill Job (and its pod's log) stays.
	drillTTL = 7 * 24 * time.Hour
)

// scheduleCronJob reads a BackupSchedule and the CronJob the operator made
// for it.
func (p *Plugin) scheduleCronJob(ctx context.Context, name string) (*trusteev1.BackupSchedule, *batchv1.CronJob, error) {
	bs := &trusteev1.BackupSchedule{}
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, bs)
	if apierrors.IsNotFound(err) {
		var list trusteev1.BackupScheduleList
		if err := p.Client.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
			return nil, nil, err
		}
		names := make([]string, 0, len(list.Items))
		for _, s := range list.Items {
			names = append(names, s.Name)
		}
		return nil, nil, notFound("BackupSchedule", name, p.Namespace, names)
	}
	if err != nil {
		return nil, nil, err
	}
	var cjs batchv1.CronJobList
	if err := p.Client.List(ctx, &cjs, client.InNamespace(p.Namespace), client.MatchingLabels{labelBackup: name}); err != nil {
		return nil, nil, err
	}
	for i := range cjs.Items {
		if metav1.IsControlledBy(&cjs.Items[i], bs) {
			return bs, &cjs.Items[i], nil
		}
	}
	msg := fmt.Sprintf("the operator has not made the CronJob of BackupSchedule %s: nothing created", name)
	if c := meta.FindStatusCondition(bs.Status.Conditions, trusteev1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
		msg += fmt.Sprintf(" (Ready %s, %s: %s)", c.Status, c.Reason, c.Message)
	}
	return nil, nil, errors.New(msg)
}

// jobsOf are the Jobs in cj's namespace that cj controls.
func (p *Plugin) jobsOf(ctx context.Context, cj *batchv1.CronJob) ([]batchv1.Job, error) {
	var jobs batchv1.JobList
	if err := p.Client.List(ctx, &jobs, client.InNamespace(cj.Namespace)); err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range jobs.Items {
		if metav1.IsControlledBy(&j, cj) {
			out = append(out, j)
		}
	}
	return out, nil
}

// jobFinished reports whether a Job is over, and whether it succeeded.
func jobFinished(j *batchv1.Job) (finished, succeeded bool, message string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, true, c.Message
		case batchv1.JobFailed:
			return true, false, c.Message
		}
	}
	return false, false, ""
}

// backupJob is the Job `kubectl trustee backup` makes from a schedule's
// CronJob, as `kubectl create job --from=cronjob/...` would: its template,
// owned by the CronJob (so the CronJob's concurrency policy and history
// limits count it, and the schedule's status reports it), marked made by
// hand. running are the Jobs the CronJob already has: a backup is refused
// while one runs, as the CronJob's policy (Forbid) refuses it.
func backupJob(cj *batchv1.CronJob, running []batchv1.Job) (*batchv1.Job, error) {
	for i := range running {
		if done, _, _ := jobFinished(&running[i]); !done {
			return nil, fmt.Errorf("the backup Job %s of CronJob %s is still running: nothing created; one backup at a time (wait for it, or delete it)",
				running[i].Name, cj.Name)
		}
	}
	t := cj.Spec.JobTemplate.DeepCopy()
	annotations := maps.Clone(t.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[annotationInstantiate] = "manual"
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    cj.Name + "-manual-",
			Namespace:       cj.Namespace,
			Labels:          t.Labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: t.Spec,
	}, nil
}

// Backup starts a backup of schedule now and prints its Job's name; with
// wait, it waits for the Job and prints the archive it wrote.
func (p *Plugin) Backup(ctx context.Context, schedule string, wait bool, timeout time.Duration) error {
	if wait && timeout <= 0 {
		return fmt.Errorf("--timeout %s: give a positive duration", timeout)
	}
	_, cj, err := p.scheduleCronJob(ctx, schedule)
	if err != nil {
		return err
	}
	jobs, err := p.jobsOf(ctx, cj)
	if err != nil {
		return err
	}
	job, err := backupJob(cj, jobs)
	if err != nil {
		return err
	}
	if err := p.Client.Create(ctx, job); err != nil {
		return err
	}
	fmt.Fprintf(p.Out, "job.batch/%s created: a backup of BackupSchedule %s\n", job.Name, schedule)
	if !wait {
		return nil
	}
	msg, err := p.waitJob(ctx, job, backupContainer, timeout)
	if err != nil {
		return err
	}
	archive, drill, _ := strings.Cut(msg, "\n")
	if archive == "" {
		fmt.Fprintf(p.Out, "job.batch/%s succeeded; its pod left no archive name\n", job.Name)
		return nil
	}
	fmt.Fprintf(p.Out, "job.batch/%s wrote %s\n", job.Name, archive)
	if drill = strings.TrimSpace(drill); drill != "" {
		fmt.Fprintln(p.Out, drill)
	}
	return nil
}

// parseSecretKey reads --decryption-key SECRET/KEY ("": none).
func parseSecretKey(v string) (*trusteev1.SecretKeySelector, error) {
	if v == "" {
		return nil, nil
	}
	name, key, ok := strings.Cut(v, "/")
	if ok && len(validation.IsDNS1123Subdomain(name)) == 0 && len(validation.IsConfigMapKey(key)) == 0 {
		return &trusteev1.SecretKeySelector{Name: name, Key: key}, nil
	}
	return nil, fmt.Errorf("--decryption-key %q: give SECRET/KEY, a Secret of the namespace and its key holding the armored secret key", v)
}

// validArchive checks that name is an archive's file name, as
// status.lastArchive gives it: a name in the schedule's destination, not a
// path, not a flag.
func validArchive(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\n") || strings.HasPrefix(name, "-") {
		return fmt.Errorf("archive %q: give the file name of an archive in the schedule's destination, as status.lastArchive names it", name)
	}
	return nil
}

// flagValue is the value of flag in args (--flag VALUE or --flag=VALUE).
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// drillJob is the Job `kubectl trustee drill` makes: the schedule's
// CronJob's pod template (its volumes, Secrets, user, node placement), its
// backup container running `kts backup verify` instead on archive (""
// takes status.lastArchive), in the directory the backups go to, with the
// secret key key names (mounted for the drill alone), else the one
// spec.verify gives. It is owned by the BackupSchedule, not the CronJob:
// the CronJob neither counts it as a backup nor deletes it.
func drillJob(bs *trusteev1.BackupSchedule, cj *batchv1.CronJob, archive string, key *trusteev1.SecretKeySelector) (*batchv1.Job, error) {
	if archive == "" {
		archive = bs.Status.LastArchive
		if archive == "" {
			return nil, fmt.Errorf("BackupSchedule %s has no last archive (status.lastArchive is empty: no backup of it has succeeded yet, or its pod left no name): nothing created; name one: kubectl trustee drill %s ARCHIVE",
				bs.Name, bs.Name)
		}
	}
	if err := validArchive(archive); err != nil {
		return nil, err
	}
	t := cj.Spec.JobTemplate.DeepCopy()
	pod := &t.Spec.Template
	i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == backupContainer })
	if i < 0 {
		return nil, fmt.Errorf("CronJob %s has no container %q running kts backup: it is not as the operator makes it; nothing created", cj.Name, backupContainer)
	}
	c := &pod.Spec.Containers[i]
	dir, ok := flagValue(c.Args, "--output")
	if !ok {
		return nil, fmt.Errorf("the %s container of CronJob %s gives no --output: it is not as the operator makes it; nothing created", backupContainer, cj.Name)
	}
	args := []string{"backup", "verify", path.Join(dir, archive)}
	if key != nil {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: drillKeyVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: key.Name, Items: []corev1.KeyToPath{{Key: key.Key, Path: key.Key}}, DefaultMode: ptr.To[int32](0o440)}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: drillKeyVolume, MountPath: mountDrillKey, ReadOnly: true})
		args = append(args, "--gpg-keyring", path.Join(mountDrillKey, key.Key))
	} else if verifyKey, ok := flagValue(c.Args, "--verify-key"); ok {
		args = append(args, "--gpg-keyring", verifyKey)
	} else if !slices.Contains(c.Args, "--cleartext") {
		recipient, _ := flagValue(c.Args, "--gpg-recipient")
		return nil, fmt.Errorf("the archives of BackupSchedule %s are encrypted for %s, and a restore drill needs the secret key that opens them: give --decryption-key SECRET/KEY, or set spec.verify.decryptionKeyRef (which also drills every new backup); nothing created",
			bs.Name, recipient)
	}
	c.Name, c.Args = drillContainer, args
	c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError

	labels := func(in map[string]string) map[string]string {
		out := maps.Clone(in)
		if out == nil {
			out = map[string]string{}
		}
		delete(out, labelBackup)
		out[labelComponent], out[labelDrill] = componentDrill, bs.Name
		return out
	}
	pod.Labels = labels(pod.Labels)
	t.Spec.BackoffLimit = ptr.To[int32](0) // a drill that fails is the result
	t.Spec.TTLSecondsAfterFinished = ptr.To(int32(drillTTL / time.Second))
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: bs.Name + "-drill-",
			Namespace:    bs.Namespace,
			Labels:       labels(t.Labels),
			Annotations:  map[string]string{annotationArchive: archive},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: trusteev1.GroupVersion.String(), Kind: "BackupSchedule", Name: bs.Name, UID: bs.UID,
			}},
		},
		Spec: t.Spec,
	}, nil
}

// Drill starts a restore drill of archive ("": the schedule's last) and
// prints its Job's name; with wait, it waits for the drill's verdict.
// decryptionKey ("SECRET/KEY", or "") names the Secret key holding the
// archive's secret key.
func (p *Plugin) Drill(ctx context.Context, schedule, archive, decryptionKey string, wait bool, timeout time.Duration) error {
	if wait && timeout <= 0 {
		return fmt.Errorf("--timeout %s: give a positive duration", timeout)
	}
	key, err := parseSecretKey(decryptionKey)
	if err != nil {
		return err
	}
	bs, cj, err := p.scheduleCronJob(ctx, schedule)
	if err != nil {
		return err
	}
	if key != nil {
		// A Secret or key that is not there would hold the pod in
		// ContainerCreating: say so now. Only the key's presence is read.
		s := &corev1.Secret{}
		if err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: key.Name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("--decryption-key: Secret %s not found in namespace %s: nothing created", key.Name, p.Namespace)
			}
			return err
		}
		if _, ok := s.Data[key.Key]; !ok {
			return fmt.Errorf("--decryption-key: Secret %s has no key %q: nothing created", key.Name, key.Key)
		}
	}
	job, err := drillJob(bs, cj, archive, key)
	if err != nil {
		return err
	}
	if err := p.Client.Create(ctx, job); err != nil {
		return err
	}
	fmt.Fprintf(p.Out, "job.batch/%s created: a restore drill of %s (BackupSchedule %s)\n", job.Name, job.Annotations[annotationArchive], schedule)
	if !wait {
		fmt.Fprintf(p.Out, "its verdict: kubectl logs -n %s job/%s -c %s\n", job.Namespace, job.Name, drillContainer)
		return nil
	}
	msg, err := p.waitJob(ctx, job, drillContainer, timeout)
	if err != nil {
		return err
	}
	if msg == "" {
		msg = fmt.Sprintf("its report: kubectl logs -n %s job/%s -c %s", job.Namespace, job.Name, drillContainer)
	}
	fmt.Fprintf(p.Out, "job.batch/%s: the restore drill passed; %s\n", job.Name, msg)
	return nil
}

// waitJob waits until job is over and returns the termination message of
// its pod's container; a failed Job is an error with that message.
func (p *Plugin) waitJob(ctx context.Context, job *batchv1.Job, container string, timeout time.Duration) (msg string, err error) {
	timedOut, err := p.every(ctx, timeout, func() (bool, error) {
		j := &batchv1.Job{}
		if err := p.Client.Get(ctx, client.ObjectKeyFromObject(job), j); err != nil {
			return false, err
		}
		done, ok, why := jobFinished(j)
		if !done {
			return false, nil
		}
		var pods corev1.PodList
		if err := p.Client.List(ctx, &pods, client.InNamespace(j.Namespace), client.MatchingLabels{batchv1.JobNameLabel: j.Name}); err != nil {
			return false, err
		}
		msg = terminationMessage(pods.Items, container, ok)
		if !ok {
			return false, fmt.Errorf("job.batch/%s failed: %s", j.Name, strings.Join(nonEmpty(why, msg), ": "))
		}
		return true, nil
	})
	if timedOut {
		return "", fmt.Errorf("job.batch/%s is not done after %s; it goes on: kubectl get -n %s job/%s", job.Name, timeout, job.Namespace, job.Name)
	}
	return msg, err
}

// terminationMessage is what the container left of pods that ended as
// the Job did (succeeded: exit status 0).
func terminationMessage(pods []corev1.Pod, container string, succeeded bool) string {
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; cs.Name == container && t != nil && (t.ExitCode == 0) == succeeded {
				if m := strings.TrimSpace(t.Message); m != "" {
					return m
				}
			}
		}
	}
	return ""
}

func nonEmpty(s ...string) []string {
	return slices.DeleteFunc(s, func(x string) bool { return x == "" })
}
