package controllers

import (
	"encoding/json"
	"path"
	"slices"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
)

// Where a backup Job's pod mounts what.
const (
	mountBackupState = "/var/lib/kts/state"
	mountRecipient   = "/etc/kts/recipient"
	// mountDecryptionKey holds the secret key of spec.verify.
	mountDecryptionKey = "/etc/kts/decryption-key"
	mountArchives      = "/backup"
	backupConfKey      = "backup.conf"
)

// backupInputs is what a BackupSchedule's objects are built from.
type backupInputs struct {
	Schedule *trusteev1.BackupSchedule
	Server   serverInputs
}

func (in backupInputs) member() string {
	if in.Schedule.Spec.Member == trusteev1.BackupMemberActive || !in.Server.KTS.HighAvailabilityEnabled() {
		return in.Server.active()
	}
	return in.Server.passive()
}

func (in backupInputs) labels() map[string]string {
	n := in.Server.names()
	return mergeLabels(n.labels(), map[string]string{
		labelServer: n.server, labelComponent: componentBackup, labelBackup: in.Schedule.Name,
	})
}

func (in backupInputs) meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: in.Schedule.Name + "-backup", Namespace: in.Schedule.Namespace, Labels: in.labels()}
}

// configMap holds the backup's keytrustee.conf: the member's, reading its
// PostgreSQL over the network.
func (in backupInputs) configMap() (*corev1.ConfigMap, error) {
	m := in.member()
	c := in.Server.memberConfig(m)
	c.DBHost = in.Server.names().PodHost(m)
	c.DBSocketDir = ""
	c.DBCAFile = path.Join(mountTLS, "ca.crt") // verifies the member's PostgreSQL (DB_TLS)
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: in.meta(),
		Data:       map[string]string{backupConfKey: string(b) + "\n"},
	}, nil
}

// cronJob runs `kts backup` on the schedule, never two at once. The archive
// path is the container's termination message, which the status reports.
func (in backupInputs) cronJob() *batchv1.CronJob {
	spec, srv := in.Schedule.Spec, in.Server
	n := srv.names()
	args := []string{"backup", "--confdir", mountBackupState, "--output", path.Join(mountArchives, spec.Destination.SubPath),
		"--quiet", "--result-file", corev1.TerminationMessagePathDefault}
	if r := spec.GPGRecipient; r != nil {
		key := ""
		if r.SecretKeyRef != nil {
			key = r.SecretKeyRef.Key
		} else if r.ConfigMapKeyRef != nil {
			key = r.ConfigMapKeyRef.Key
		}
		args = append(args, "--gpg-keyring", path.Join(mountRecipient, key), "--gpg-recipient", r.Recipient)
	} else {
		args = append(args, "--cleartext")
	}
	if spec.Roll != nil {
		args = append(args, "--roll", strconv.Itoa(int(*spec.Roll)))
	}
	if v := spec.Verify; v != nil {
		args = append(args, "--verify")
		if v.DecryptionKeyRef != nil {
			args = append(args, "--verify-key", path.Join(mountDecryptionKey, v.DecryptionKeyRef.Key))
		}
	}
	security := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	mounts := []corev1.VolumeMount{
		// The emptyDir is mounted above the state directory, which setup
		// creates (0700): an emptyDir's own mode is 0777, and kts refuses a
		// configuration in a directory everyone may write.
		{Name: "state", MountPath: mountData},
		{Name: "identity", MountPath: mountIdentity, ReadOnly: true},
		{Name: "replication", MountPath: mountReplication, ReadOnly: true},
		{Name: "tls", MountPath: mountTLS, ReadOnly: true},
		{Name: "admin-ca", MountPath: mountAdminCA, ReadOnly: true},
		{Name: "config", MountPath: mountConfig, ReadOnly: true},
		{Name: "archives", MountPath: mountArchives},
		{Name: "tmp", MountPath: "/tmp"},
	}
	volumes := []corev1.Volume{
		{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		secretVolume("identity", n.Identity()),
		secretVolume("replication", n.Replication()),
		secretVolume("tls", srv.tlsSecretName()),
		secretVolume("admin-ca", n.AdminCA()),
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: in.meta().Name}}}},
		{Name: "archives", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: spec.Destination.ClaimName}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if h := srv.KTS.Spec.HSM; h != nil { // the deposits' keys are in the HSM
		mounts = append(mounts, corev1.VolumeMount{Name: "hsm", MountPath: mountHSM, ReadOnly: true})
		volumes = append(volumes, secretVolume("hsm", h.PINSecretRef.Name))
	}
	if r := spec.GPGRecipient; r != nil {
		mounts = append(mounts, corev1.VolumeMount{Name: "recipient", MountPath: mountRecipient, ReadOnly: true})
		if r.SecretKeyRef != nil {
			volumes = append(volumes, secretVolume("recipient", r.SecretKeyRef.Name))
		} else {
			volumes = append(volumes, corev1.Volume{Name: "recipient", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: r.ConfigMapKeyRef.Name}}}})
		}
	}
	container := func(name string, args ...string) corev1.Container {
		return corev1.Container{
			Name: name, Image: srv.image(), ImagePullPolicy: srv.KTS.Spec.ImagePullPolicy,
			Command: []string{"kts"}, Args: args, SecurityContext: security, VolumeMounts: mounts,
		}
	}
	setup := container(contract.ContainerSetup, contract.Setup{Member: srv.role(in.member()), ConfigOnly: true,
		ConfigFile: path.Join(mountConfig, backupConfKey), Dir: mountBackupState}.Args()...)
	backup := container("backup", args...)
	backup.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	if v := spec.Verify; v != nil && v.DecryptionKeyRef != nil {
		// The key that opens every archive: for the drill only.
		backup.VolumeMounts = append(slices.Clone(mounts), corev1.VolumeMount{Name: "decryption-key", MountPath: mountDecryptionKey, ReadOnly: true})
		volumes = append(volumes, secretVolume("decryption-key", v.DecryptionKeyRef.Name))
	}

	return &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: in.meta(),
		Spec: batchv1.CronJobSpec{
			Schedule:                   spec.Schedule,
			TimeZone:                   spec.TimeZone,
			Suspend:                    ptr.To(spec.Suspend),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    ptr.To[int64](300),
			SuccessfulJobsHistoryLimit: ptr.To[int32](3),
			FailedJobsHistoryLimit:     ptr.To[int32](3),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: in.labels()},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](1),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: in.labels()},
						Spec: corev1.PodSpec{
							RestartPolicy:                corev1.RestartPolicyNever,
							InitContainers:               []corev1.Container{setup},
							Containers:                   []corev1.Container{backup},
							Volumes:                      volumes,
							AutomountServiceAccountToken: ptr.To(false),
							EnableServiceLinks:           ptr.To(false),
							ImagePullSecrets:             srv.KTS.Spec.ImagePullSecrets,
							// Where the server's pods may run, its backups may too.
							NodeSelector:      srv.KTS.Spec.Scheduling.NodeSelector,
							Tolerations:       srv.KTS.Spec.Scheduling.Tolerations,
							PriorityClassName: srv.KTS.Spec.Scheduling.PriorityClassName,
							SecurityContext: &corev1.PodSecurityContext{
								RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](imageUID), RunAsGroup: ptr.To[int64](imageUID),
								FSGroup:        ptr.To[int64](imageUID),
								SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							},
						},
					},
				},
			},
		},
	}
}
