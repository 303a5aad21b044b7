package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KeyTrusteeServer is a Key Trustee Server: an active server and, with high
// availability, a passive one on another node, each with its PostgreSQL
// beside it, the passive a synchronous standby of the active. The operator
// creates their StatefulSets, Services, Secrets and TLS certificate, and
// generates the server's OpenPGP identity once.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kts,categories=trustee
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Whether the server answers and, with high availability, the pair is in sync"
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.active`,description="The pod serving as the active server"
// +kubebuilder:printcolumn:name="Passive",type=string,JSONPath=`.status.passive`,description="The pod serving as the passive server"
// +kubebuilder:printcolumn:name="Replicating",type=string,JSONPath=`.status.conditions[?(@.type=="Replicating")].status`,description="Whether the passive is the active's synchronous standby"
// +kubebuilder:printcolumn:name="Fingerprint",type=string,JSONPath=`.status.fingerprint`,description="The server's OpenPGP key, as GET /?a=fingerprint answers"
// +kubebuilder:printcolumn:name="Switchover",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Switchover")].reason`,description="Where a change of the active member stands"
// +kubebuilder:printcolumn:name="Upgrade",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Upgrading")].reason`,description="Where a restart of the members on a new pod template stands"
// +kubebuilder:printcolumn:name="Storage",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="StorageResized")].reason`,description="Where a growth of the members' volumes stands"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40",message="metadata.name must be at most 40 characters, so that the names of the StatefulSets, Services, pods and Secrets made from it stay within Kubernetes' limits"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must start with a letter and hold only lower-case letters, digits and '-' (no '.'): it names Services, whose names are DNS labels"
// +kubebuilder:validation:XValidation:rule="!has(self.status) || !has(self.status.storageSize) || !has(self.spec.storage) || !has(self.spec.storage.size) || (has(oldSelf.spec.storage) && has(oldSelf.spec.storage.size) && self.spec.storage.size == oldSelf.spec.storage.size) || quantity(string(self.spec.storage.size)).compareTo(quantity(string(self.status.storageSize))) >= 0",message="spec.storage.size cannot go below status.storageSize, the size the members' claims already have: a PersistentVolumeClaim can only grow",messageExpression="'spec.storage.size cannot go below ' + string(self.status.storageSize) + ', the size the PersistentVolumeClaims of the members already have (status.storageSize): a claim can only grow, so set it back to at least that'",fieldPath=".spec.storage.size"
type KeyTrusteeServer struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the server the user asks for.
	// +required
	Spec KeyTrusteeServerSpec `json:"spec"`

	// status is what the operator last observed.
	// +optional
	Status KeyTrusteeServerStatus `json:"status,omitempty"`
}

// KeyTrusteeServerSpec is the desired state of a Key Trustee Server.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.hsm) || has(self.hsm)",message="hsm cannot be removed: the server's keys are wrapped by keys inside the HSM token"
// +kubebuilder:validation:XValidation:rule="has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)",message="bootstrap is read when the server is created and cannot be added, changed or removed afterwards"
type KeyTrusteeServerSpec struct {
	// image of the server containers: one image holds kts and the
	// PostgreSQL 15 that runs beside it. Empty means the operator's own
	// image. Changing it rolls the passive first, then the active.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the server containers: Always, IfNotPresent or
	// Never. Empty means Kubernetes' default for the image's tag.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// imagePullSecrets are Secrets in the same namespace holding the
	// credentials to pull image.
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// highAvailability runs a passive server beside the active one.
	// +kubebuilder:default={}
	// +optional
	HighAvailability HighAvailabilitySpec `json:"highAvailability,omitempty"`

	// bootstrap starts a new server from a backup archive instead of
	// empty: its identity (OpenPGP key, deposit keyring, session key,
	// database password) comes from the archive into the identity Secret,
	// and the active's database is the archive's. Read only when the
	// server is created; an identity Secret that exists already is kept.
	// +optional
	Bootstrap *BootstrapSpec `json:"bootstrap,omitempty"`

	// activeMember is the member that should be the active server: a or b
	// (their pods are <name>-a-0 and <name>-b-0). Changing it switches the
	// roles of a ready, in-sync pair: the active is fenced (its pod stopped)
	// before the passive is promoted, then it rejoins as the passive.
	// Refused, with the Switchover condition saying why, while the pair is
	// not in sync. Empty keeps whichever member is active, which is also
	// what lets the operator promote the passive by itself when the
	// active's data is lost (status.activeMember says which one it is).
	// +kubebuilder:validation:Enum=a;b
	// +optional
	ActiveMember string `json:"activeMember,omitempty"`

	// postgresql tunes the PostgreSQL instance that runs beside each server.
	// +optional
	PostgreSQL PostgreSQLSpec `json:"postgresql,omitempty"`

	// storage is the volume each member (active, passive) gets for its
	// PostgreSQL data and state directory.
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// tls is the certificate the servers present on port 11371, and the
	// protocol versions and ciphers they accept.
	// +required
	TLS TLSSpec `json:"tls"`

	// hsm keeps the server's key-encryption keys in a PKCS#11 token (an
	// HSM) instead of a file, as `kts keyhsm init` does. It can be added to
	// a running server but never removed.
	// +optional
	HSM *HSMSpec `json:"hsm,omitempty"`

	// smtp is the mail server through which the server sends its mail to
	// organization contacts. Without it, mail is queued but not sent.
	// +optional
	SMTP *SMTPSpec `json:"smtp,omitempty"`

	// resources of the server container of each member. The PostgreSQL
	// container has its own, in postgresql.resources.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// scheduling says where the members' pods may run. The active and the
	// passive never share a node (or whatever topologyKey names).
	// +kubebuilder:default={}
	// +optional
	Scheduling SchedulingSpec `json:"scheduling,omitempty"`

	// monitoring has the operator make what Prometheus needs to scrape the
	// servers' /metrics.
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`
}

// MonitoringSpec asks for the objects through which Prometheus scrapes the
// servers.
type MonitoringSpec struct {
	// enablePodMonitor makes a PodMonitor (monitoring.coreos.com/v1, the
	// Prometheus operator's kind) named like the server, which scrapes
	// both members' /metrics over HTTPS, verifying their certificate with
	// the ca.crt of the server certificate's Secret. Its series carry the
	// labels keytrusteeserver and member. Without the PodMonitor CRD in the
	// cluster, the condition PodMonitorReady says so and nothing else
	// changes. Turning it off deletes the PodMonitor.
	// +optional
	EnablePodMonitor bool `json:"enablePodMonitor,omitempty"`

	// podMonitorLabels are added to the PodMonitor's labels: those the
	// Prometheus resource selects PodMonitors by (its
	// podMonitorSelector), such as release: prometheus.
	// +optional
	PodMonitorLabels map[string]string `json:"podMonitorLabels,omitempty"`
}

// BootstrapSpec is what a new server starts from.
type BootstrapSpec struct {
	// backup is an archive kts backup wrote (a BackupSchedule's, say).
	// +required
	Backup BackupSource `json:"backup"`
}

// BackupSource is a backup archive in a Secret, and the key that opens it.
type BackupSource struct {
	// archiveSecretRef is the key of a Secret holding the archive, as kts
	// backup wrote it (kubectl create secret generic NAME
	// --from-file=archive=kts_bak_....tar.gpg). A Secret holds at most
	// 1 MiB.
	// +required
	ArchiveSecretRef SecretKeySelector `json:"archiveSecretRef"`

	// decryptionKeyRef is the key of a Secret holding the OpenPGP secret
	// key of the archive's recipient, armored or binary, without a
	// passphrase (gpg --export-secret-keys). Required for an encrypted
	// archive.
	// +optional
	DecryptionKeyRef *SecretKeySelector `json:"decryptionKeyRef,omitempty"`
}

// HighAvailabilitySpec turns the passive member on or off.
type HighAvailabilitySpec struct {
	// enabled runs a passive server on another node: a synchronous standby
	// of the active's PostgreSQL that serves reads and forwards writes, so
	// that no acknowledged write is lost when a member fails. false runs the
	// standalone server only. Turning it on later adds the passive, seeded
	// from the active, without downtime; turning it off removes the passive
	// member.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// PostgreSQLSpec tunes the PostgreSQL instance beside each server.
// Replication, listening and file locations are the operator's: those
// parameters are refused.
type PostgreSQLSpec struct {
	// parameters are extra postgresql.conf settings for both members, e.g.
	// shared_buffers or max_connections. The operator sets the ones that
	// make the pair work (listen_addresses, port, wal_level,
	// synchronous_commit, synchronous_standby_names, primary_conninfo, ...)
	// and refuses them here.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Parameters []PostgreSQLParameter `json:"parameters,omitempty"`

	// resources of the PostgreSQL container of each member.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// PostgreSQLParameter is one postgresql.conf setting.
//
// +kubebuilder:validation:XValidation:rule="!(self.name in ['listen_addresses', 'port', 'unix_socket_directories', 'unix_socket_group', 'unix_socket_permissions', 'data_directory', 'config_file', 'hba_file', 'ident_file', 'include', 'include_dir', 'include_if_exists', 'ssl', 'ssl_cert_file', 'ssl_key_file', 'ssl_ca_file', 'ssl_min_protocol_version', 'password_encryption', 'fsync', 'full_page_writes', 'wal_level', 'max_wal_senders', 'max_replication_slots', 'wal_keep_size', 'hot_standby', 'hot_standby_feedback', 'max_standby_streaming_delay', 'synchronous_commit', 'synchronous_standby_names', 'primary_conninfo', 'primary_slot_name', 'restore_command', 'recovery_target', 'recovery_target_timeline', 'archive_mode', 'archive_command', 'archive_library', 'logging_collector', 'log_destination', 'log_line_prefix', 'log_parameter_max_length', 'log_parameter_max_length_on_error', 'log_statement'])",message="this PostgreSQL parameter is set by the operator (listening, replication, durability, file locations, logging of statements and their parameters): it cannot be changed in postgresql.parameters"
type PostgreSQLParameter struct {
	// name of the setting, as in postgresql.conf (lower case), e.g.
	// shared_buffers.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_.]*$`
	// +required
	Name string `json:"name"`

	// value of the setting, without postgresql.conf quoting, e.g. 256MB.
	// +kubebuilder:validation:MaxLength=1024
	// +required
	Value string `json:"value"`
}

// StorageSpec is the volume of each member.
type StorageSpec struct {
	// size of each member's PersistentVolumeClaim. Raising it grows the
	// claims in place, the passive's first, when their StorageClass allows
	// volume expansion (the StorageResized condition says how far it got,
	// or why it was refused). It never goes below status.storageSize, the
	// size the claims already have: a change not yet applied (refused, for
	// instance) can be reverted.
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="storage.size must be larger than zero"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName of the members' PersistentVolumeClaims. Empty means
	// the cluster's default StorageClass. It cannot change once set.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage.storageClassName cannot change: the members' volumes keep the class they were made with"
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// TLS minimum protocol versions.
const (
	TLSVersion12 = "tlsv1.2"
	TLSVersion13 = "tlsv1.3"
)

// TLSSpec is the certificate of the servers and what TLS they accept. The
// certificate comes either from cert-manager (issuerRef) or from an existing
// Secret (secretName); it must name both members, the Services in front of
// them and any dnsNames.
//
// +kubebuilder:validation:XValidation:rule="has(self.issuerRef) != has(self.secretName)",message="tls needs exactly one of issuerRef (cert-manager issues the certificate) or secretName (an existing kubernetes.io/tls Secret)"
// +kubebuilder:validation:XValidation:rule="!has(self.dnsNames) || has(self.issuerRef)",message="tls.dnsNames adds names to a certificate issued through tls.issuerRef; the certificate in tls.secretName must already carry them"
// +kubebuilder:validation:XValidation:rule="!has(self.cipherList) || !has(self.minVersion) || self.minVersion != 'tlsv1.3'",message="tls.cipherList selects TLS 1.2 cipher suites, so it has no effect with minVersion tlsv1.3 (whose suites are fixed): remove one of them"
type TLSSpec struct {
	// issuerRef is the cert-manager Issuer or ClusterIssuer that issues the
	// servers' certificate. The operator asks for it, and cert-manager
	// renews it; renewed certificates reach the servers without a restart.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`

	// secretName is an existing Secret of type kubernetes.io/tls in the same
	// namespace (tls.crt, tls.key, and ca.crt for the CA that clients and
	// the passive verify the servers with). Updating the Secret reaches the
	// servers without a restart.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// dnsNames are further names the certificate issued through issuerRef
	// carries, e.g. the name clients reach the servers by from outside the
	// cluster. The in-cluster Service names are always included.
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +optional
	DNSNames []string `json:"dnsNames,omitempty"`

	// minVersion is the oldest TLS protocol version the servers accept:
	// tlsv1.2 (the default) or tlsv1.3. TLS 1.0 and 1.1 are not offered:
	// RFC 8996 deprecates them.
	// +kubebuilder:validation:Enum=tlsv1.2;tlsv1.3
	// +kubebuilder:default="tlsv1.2"
	// +optional
	MinVersion string `json:"minVersion,omitempty"`

	// cipherList restricts the TLS 1.2 cipher suites the servers accept, in
	// OpenSSL's cipher-list syntax (see `man ciphers`), e.g.
	// "ECDHE+AESGCM:!SHA1". Empty means Go's default suites.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[-A-Za-z0-9+!@=:,. _]+$`
	// +optional
	CipherList string `json:"cipherList,omitempty"`
}

// IssuerReference names a cert-manager issuer.
type IssuerReference struct {
	// name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// kind of the issuer: Issuer (the default; in the same namespace),
	// ClusterIssuer, or the kind of an external issuer.
	// +kubebuilder:default="Issuer"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`

	// group of the issuer's API: cert-manager.io (the default) or the group
	// of an external issuer.
	// +kubebuilder:default="cert-manager.io"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
}

// HSMSpec is a PKCS#11 token that holds the server's key-encryption keys.
//
// +kubebuilder:validation:XValidation:rule="self.tokenLabel == oldSelf.tokenLabel",message="hsm.tokenLabel cannot change: the server's keys live in that token"
type HSMSpec struct {
	// module is the absolute path of the PKCS#11 library in the server
	// image, e.g. /usr/lib/softhsm/libsofthsm2.so.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="hsm.module must be the absolute path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so"
	// +required
	Module string `json:"module"`

	// tokenLabel is the label of the token that holds the keys (1 to 32
	// bytes).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +required
	TokenLabel string `json:"tokenLabel"`

	// pinSecretRef is the key of a Secret holding the token's user PIN.
	// The PIN never appears in the spec, the status or events.
	// +required
	PINSecretRef SecretKeySelector `json:"pinSecretRef"`

	// dataKeyCacheSeconds is how long a data key unwrapped by the HSM stays
	// in the server's memory: 0 calls the HSM for every deposit. Empty means
	// the server's default (60).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	DataKeyCacheSeconds *int32 `json:"dataKeyCacheSeconds,omitempty"`
}

// SMTP transport security.
const (
	SMTPSecurityStartTLS = "starttls"
	SMTPSecurityTLS      = "tls"
	SMTPSecurityNone     = "none"
)

// SMTPSpec is the mail server (MTA) the servers send their mail through.
//
// +kubebuilder:validation:XValidation:rule="!has(self.authSecretRef) || !has(self.security) || self.security != 'none'",message="smtp.authSecretRef with security none would send the SMTP password in clear text: use starttls or tls"
type SMTPSpec struct {
	// host name or address of the mail server.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[^\s/]+$`
	// +required
	Host string `json:"host"`

	// port of the mail server: 25 by default (587 is usual for starttls with
	// authentication, 465 for tls).
	// +kubebuilder:default=25
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// security of the connection: starttls (the default: upgrade to TLS,
	// refuse a server that cannot), tls (TLS from the start, usually port
	// 465) or none (only for a mail server inside the cluster's trusted
	// network).
	// +kubebuilder:validation:Enum=starttls;tls;none
	// +kubebuilder:default="starttls"
	// +optional
	Security string `json:"security,omitempty"`

	// from is the sender address of the mail. Empty means
	// keytrustee@<the server's host name>.
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^\s@]+@[^\s@]+$`
	// +optional
	From string `json:"from,omitempty"`

	// authSecretRef names a Secret of type kubernetes.io/basic-auth (keys
	// username and password) for SMTP authentication. Empty means no
	// authentication.
	// +optional
	AuthSecretRef *LocalSecretReference `json:"authSecretRef,omitempty"`

	// caSecretRef is the key of a Secret holding the PEM CA certificates that
	// verify the mail server. Empty means the system's CAs.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`

	// externalURL is the base of the links in the mail, e.g.
	// https://kts.example.com:11371. Empty means the read-write Service's
	// in-cluster URL.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != '' && url(self).getQuery().size() == 0",message="smtp.externalURL must be an https:// URL of the server, without a query, e.g. https://kts.example.com:11371"
	// +optional
	ExternalURL string `json:"externalURL,omitempty"`
}

// SchedulingSpec says where the members' pods run.
type SchedulingSpec struct {
	// nodeSelector limits the members' pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations of the members' pods.
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// topologyKey is the node label whose values the active and the passive
	// must differ in (required pod anti-affinity): kubernetes.io/hostname
	// (the default) puts them on different nodes,
	// topology.kubernetes.io/zone in different zones.
	// +kubebuilder:default="kubernetes.io/hostname"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +optional
	TopologyKey string `json:"topologyKey,omitempty"`

	// priorityClassName of the members' pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// KeyTrusteeServerStatus is what the operator last observed of a server.
type KeyTrusteeServerStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Progressing, Degraded, ActiveReady, PassiveReady,
	// Replicating, CertificateReady, Upgrading, Switchover and
	// StorageResized.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// activeMember is the member that holds the active role, a or b. The
	// operator also keeps it in the state Secret NAME-state (key active-member),
	// which outlives the KeyTrusteeServer.
	// +optional
	ActiveMember string `json:"activeMember,omitempty"`

	// active is the name of the pod serving as the active server (its
	// PostgreSQL is the primary).
	// +optional
	Active string `json:"active,omitempty"`

	// passive is the name of the pod serving as the passive server (its
	// PostgreSQL is the synchronous standby). Empty without high
	// availability.
	// +optional
	Passive string `json:"passive,omitempty"`

	// fingerprint of the server's OpenPGP key, as GET /?a=fingerprint
	// answers it, e.g. 4096R/4EDC46882386C827E20DEEA2D850ACA33BEDB0D1.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`

	// endpoints are the URLs clients use inside the cluster.
	// +optional
	Endpoints *ServerEndpoints `json:"endpoints,omitempty"`

	// storageSize is the size the members' PersistentVolumeClaims ask
	// for, the largest of them: what their volumes have or are growing
	// to. spec.storage.size may not be set below it.
	// +optional
	StorageSize *resource.Quantity `json:"storageSize,omitempty"`
}

// ServerEndpoints are the URLs of a server's Services.
type ServerEndpoints struct {
	// readWrite is the URL of the Service in front of the active server,
	// e.g. https://kts-rw.keys.svc:11371. Clients send every request there.
	// +optional
	ReadWrite string `json:"readWrite,omitempty"`

	// read is the URL of the Service in front of both servers, for reads
	// that may be served by the passive.
	// +optional
	Read string `json:"read,omitempty"`
}

// KeyTrusteeServerList is a list of KeyTrusteeServers.
//
// +kubebuilder:object:root=true
type KeyTrusteeServerList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the servers.
	Items []KeyTrusteeServer `json:"items"`
}
