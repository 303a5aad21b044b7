package controllers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/gnupg"
	"trustee.dev/trustee/server/member/contract"
)

// Where the active's setup finds spec.bootstrap's archive and key.
const (
	mountBootstrapArchive = "/etc/kts/bootstrap/archive"
	mountBootstrapKey     = "/etc/kts/bootstrap/key"
)

// identityBootstrappedFrom is the key of the identity Secret that says
// which archive the identity came from.
const identityBootstrappedFrom = "bootstrapped-from"

// identityFromArchive reads the server identity out of spec.bootstrap's
// archive: the files the archived keytrustee.conf names, under the keys of
// the identity Secret. The archive is checked whole (its integrity, and
// that it is a server's) before anything is taken from it.
func (r *ServerReconciler) identityFromArchive(ctx context.Context, kts *trusteev1.KeyTrusteeServer) (map[string][]byte, error) {
	src := kts.Spec.Bootstrap.Backup
	archive, err := r.secretKey(ctx, kts.Namespace, src.ArchiveSecretRef, "bootstrap.backup.archiveSecretRef")
	if err != nil {
		return nil, err
	}
	var key []byte
	if ref := src.DecryptionKeyRef; ref != nil {
		if key, err = r.secretKey(ctx, kts.Namespace, *ref, "bootstrap.backup.decryptionKeyRef"); err != nil {
			return nil, err
		}
	}
	data, err := archiveIdentity(ctx, archive, key)
	if err != nil {
		return nil, fmt.Errorf("bootstrap.backup: the archive in Secret %s (key %s): %w; nothing was created", src.ArchiveSecretRef.Name, src.ArchiveSecretRef.Key, err)
	}
	return data, nil
}

// archiveIdentity unpacks an archive (decrypted with key when it is
// encrypted) in a temporary directory and returns its server's identity.
func archiveIdentity(ctx context.Context, archive, key []byte) (map[string][]byte, error) {
	br := bufio.NewReader(bytes.NewReader(archive))
	head, _ := br.Peek(512)
	var in io.Reader = br
	var finish func() error
	if gnupg.IsEncrypted(head) {
		if len(key) == 0 {
			return nil, fmt.Errorf("it is encrypted: set bootstrap.backup.decryptionKeyRef to the recipient's secret key")
		}
		dec, err := gnupg.Decrypt(ctx, br, gnupg.DecryptOptions{SecretKey: key})
		if err != nil {
			return nil, err
		}
		in, finish = dec, dec.Close
	}
	work, err := os.MkdirTemp("", "kts-bootstrap-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	staged, err := backup.Unpack(in, finish, filepath.Join(work, "state"))
	if err != nil {
		return nil, err
	}
	defer staged.Remove()
	if staged.Kind != backup.KindServer {
		return nil, fmt.Errorf("it is a client backup, not a server's")
	}
	file := func(p string) ([]byte, error) {
		i, ok := staged.Lookup(p)
		if !ok {
			return nil, fmt.Errorf("it holds no %s", p)
		}
		return os.ReadFile(staged.File(i))
	}
	conf, err := file(config.FileName)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(conf)
	if err != nil {
		return nil, fmt.Errorf("its %s: %w", config.FileName, err)
	}
	if cfg.HasHSM() && cfg.HSMSealState {
		return nil, fmt.Errorf("its identity files are sealed by its HSM (HSM_SEAL_STATE), which the operator's servers do not use: " +
			"restore it with kts restore on a host with that HSM instead")
	}
	out := map[string][]byte{}
	for k, p := range map[string]string{confdir.IdentityServerKey: cfg.ServerKey, confdir.IdentityKeyring: cfg.Keyring,
		confdir.IdentitySessionKey: cfg.SessionKey, confdir.IdentityDBPassword: cfg.DBPasswordFile} {
		if out[k], err = file(p); err != nil {
			return nil, err
		}
	}
	out[identityBootstrappedFrom] = fmt.Appendf(nil, "the backup of %s taken at %s", staged.Host, staged.Created.UTC().Format(time.RFC3339))
	return out, nil
}

// secretKey reads one key of a Secret, saying which field named it when
// it is missing.
func (r *ServerReconciler) secretKey(ctx context.Context, ns string, ref trusteev1.SecretKeySelector, field string) ([]byte, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, s); err != nil {
		return nil, fmt.Errorf("%s: Secret %s: %w; nothing was created", field, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok || len(v) == 0 {
		return nil, fmt.Errorf("%s: Secret %s has no key %q; nothing was created", field, ref.Name, ref.Key)
	}
	return v, nil
}

// bootstrapVolumes are the active's mounts of spec.bootstrap's Secrets;
// it sets the files in setup that make it load the archive into a new
// database. The Secrets are optional: once the database exists, setup
// does not read them, and they may be deleted.
func (in serverInputs) bootstrapVolumes(setup *contract.Setup) ([]corev1.Volume, []corev1.VolumeMount) {
	b := in.KTS.Spec.Bootstrap
	if b == nil {
		return nil, nil
	}
	vol := func(name string, ref trusteev1.SecretKeySelector) corev1.Volume {
		v := secretVolume(name, ref.Name)
		v.Secret.Optional = ptr.To(true)
		return v
	}
	ref := b.Backup.ArchiveSecretRef
	vols := []corev1.Volume{vol("bootstrap-archive", ref)}
	mounts := []corev1.VolumeMount{{Name: "bootstrap-archive", MountPath: mountBootstrapArchive, ReadOnly: true}}
	setup.RestoreArchive = path.Join(mountBootstrapArchive, ref.Key)
	if k := b.Backup.DecryptionKeyRef; k != nil {
		vols = append(vols, vol("bootstrap-key", *k))
		mounts = append(mounts, corev1.VolumeMount{Name: "bootstrap-key", MountPath: mountBootstrapKey, ReadOnly: true})
		setup.RestoreKey = path.Join(mountBootstrapKey, k.Key)
	}
	return vols, mounts
}
